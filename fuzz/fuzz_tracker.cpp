// The agent's ring-buffer record handling (Tracker::OnRecord): record framing, connection
// tracking, HTTP reassembly, header policy, real-client-IP resolution behind a trusted proxy and
// event construction. Property: every event the agent emits is one the server's ingest accepts.
//
// Input: a sequence of operations, each an op byte then its operands (see the switch below).
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "boing/agent/tracker.h"
#include "boing/event.h"
#include "boing_abi.h"
#include "fuzz_util.h"

using namespace boing::agent;

namespace {

class Reader {
 public:
  Reader(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  bool empty() const { return i_ >= n_; }
  uint8_t Byte() { return i_ < n_ ? d_[i_++] : 0; }
  std::string Bytes(size_t n) {
    n = std::min(n, n_ - i_);
    std::string s(reinterpret_cast<const char*>(d_ + i_), n);
    i_ += n;
    return s;
  }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t i_ = 0;
};

boing_event_header Header(uint32_t type, int conn, uint64_t ts) {
  boing_event_header h{};
  h.type = type;
  h.abi_version = BOING_ABI_VERSION;
  h.ts_ns = ts;
  h.conn.tgid = 1;  // /proc/1 exists: the container-id lookup runs for real
  h.conn.fd = 3 + conn;
  h.conn.generation = 7;
  std::memcpy(h.comm, "fuzzd", 5);
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  TrackerOptions opts;
  opts.limits.http.max_head_bytes = 4096;
  opts.limits.max_body_excerpt = 256;
  opts.identity_key = "fuzz-identity-key";
  opts.agent_id = "agent-fuzz";
  opts.host_name = "fuzzhost";
  opts.max_connections = 3;
  Cidr proxy;
  Cidr::Parse("127.0.0.0/8", proxy);
  opts.trusted_proxies.push_back(proxy);
  std::vector<boing::Event> events;
  Tracker tracker(opts, [&](boing::Event&& e) { events.push_back(std::move(e)); });

  Reader in(data, size);
  uint64_t ts = 1'000'000;
  while (!in.empty()) {
    uint8_t op = in.Byte();
    int conn = (op >> 4) & 3;
    ts += 1000 * (1 + (op & 0x0f));
    std::vector<uint8_t> rec;
    switch (op & 7) {
      case 0: {  // open: family, role, remote address
        boing_conn_event e{};
        e.hdr = Header(BOING_EV_CONN_OPEN, conn, ts);
        uint8_t b = in.Byte();
        e.family = (b & 1) ? 10 : 2;
        e.role = (b >> 1) % 3;
        e.local_port = 8080;
        e.remote_port = 40000;
        e.local_addr[0] = 127, e.local_addr[3] = 1;
        std::string a = in.Bytes((b & 1) ? 16 : 4);
        std::memcpy(e.remote_addr, a.data(), a.size());
        rec.resize(sizeof(e));
        std::memcpy(rec.data(), &e, sizeof(e));
        break;
      }
      case 1:
      case 2: {  // data in (1) or out (2): length (1 or 2 bytes), optional gap, bytes
        size_t len = in.Byte();
        if (op & 8) len |= size_t{in.Byte()} << 8;
        uint32_t gap = (op & 0x80) ? in.Byte() * 16u : 0;
        std::string bytes = in.Bytes(len);
        boing_data_event e{};
        e.hdr = Header(BOING_EV_DATA, conn, ts);
        e.direction = (op & 7) == 1 ? BOING_DIR_INGRESS : BOING_DIR_EGRESS;
        e.flags = (op & 0x40) ? BOING_DATA_TLS : 0;
        e.captured = static_cast<uint32_t>(bytes.size());
        e.len = e.captured + gap;
        if (gap) e.flags |= BOING_DATA_TRUNCATED;
        rec.resize(sizeof(e) + bytes.size());
        std::memcpy(rec.data(), &e, sizeof(e));
        std::memcpy(rec.data() + sizeof(e), bytes.data(), bytes.size());
        break;
      }
      case 3: {
        boing_event_header h = Header(BOING_EV_CONN_CLOSE, conn, ts);
        rec.resize(sizeof(h));
        std::memcpy(rec.data(), &h, sizeof(h));
        break;
      }
      case 4: {  // a raw record, as hostile as the input makes it
        std::string raw = in.Bytes(in.Byte());
        rec.assign(raw.begin(), raw.end());
        break;
      }
      default: {  // a data header whose lengths disagree with the record
        boing_data_event e{};
        e.hdr = Header(BOING_EV_DATA, conn, ts);
        e.len = in.Byte();
        e.captured = in.Byte();
        std::string bytes = in.Bytes(in.Byte());
        rec.resize(sizeof(e) + bytes.size());
        std::memcpy(rec.data(), &e, sizeof(e));
        std::memcpy(rec.data() + sizeof(e), bytes.data(), bytes.size());
        break;
      }
    }
    tracker.OnRecord(rec);
  }
  tracker.Sweep(ts + 1, 0);

  boing::EventLimits limits;
  for (const boing::Event& e : events) {
    std::string json = boing::EventToJson(e);
    boing::Event back;
    auto err = boing::ParseEvent(json, limits, back);
    if (err) {
      std::fprintf(stderr, "agent event rejected by ingest: %s: %s\n%s\n", err->field.c_str(),
                   err->message.c_str(), json.c_str());
    }
    BOING_FUZZ_CHECK(!err);
  }
  return 0;
}
