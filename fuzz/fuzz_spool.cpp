// The agent spool's record reader (agent/ spool.h) on a hostile or torn segment file: recovery
// must cut the file at the first bad record, never hand out a record that fails its CRC or is out
// of seq order, and leave a spool that accepts appends.
//
// Input: byte 0 = the acknowledged seq written to `acked` (0: no file), then the segment bytes.
#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "boing/agent/spool.h"
#include "fuzz_util.h"

using namespace boing::agent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string dir = boing::fuzz::ScratchDir() + "/spool";
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);  // a fresh directory per input
  mkdir(dir.c_str(), 0700);
  std::string seg(reinterpret_cast<const char*>(data + 1), size - 1);
  boing::fuzz::WriteScratch("spool/0000000000000001.seg", seg);
  if (data[0]) boing::fuzz::WriteScratch("spool/acked", std::to_string(data[0]));

  SpoolOptions opt;
  opt.dir = dir;
  opt.max_bytes = 1 << 20;
  opt.segment_bytes = 64 << 10;
  opt.fsync = FsyncPolicy::kNever;
  opt.max_record_bytes = 4096;
  opt.sync_fn = [](int) { return 0; };
  std::string error;
  auto spool = Spool::Open(opt, &error);
  BOING_FUZZ_CHECK(spool != nullptr);
  SpoolStats st = spool->stats();
  BOING_FUZZ_CHECK(st.truncated_bytes <= seg.size());
  // Unless recovery deleted the segment (empty, or wholly acknowledged), it kept what it did
  // not cut off.
  if (st.bytes) BOING_FUZZ_CHECK(st.bytes + st.truncated_bytes == seg.size());

  std::vector<SpoolRecord> recs;
  BOING_FUZZ_CHECK(spool->Read(1000, 1 << 20, recs, &error));
  BOING_FUZZ_CHECK(recs.size() == st.pending);
  uint64_t prev = data[0];
  for (const SpoolRecord& r : recs) {
    BOING_FUZZ_CHECK(r.seq > prev);
    BOING_FUZZ_CHECK(r.payload.size() <= opt.max_record_bytes);
    prev = r.seq;
  }
  uint64_t next = spool->NextSeq();
  BOING_FUZZ_CHECK(next > prev);
  BOING_FUZZ_CHECK(spool->Append(next, "after recovery", &error));
  recs.clear();
  BOING_FUZZ_CHECK(spool->ReadAfter(prev, 1000, 1 << 20, recs, &error));
  BOING_FUZZ_CHECK(!recs.empty() && recs.back().seq == next &&
                   recs.back().payload == "after recovery");
  BOING_FUZZ_CHECK(spool->Ack(next, &error));
  return 0;
}
