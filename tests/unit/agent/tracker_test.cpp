#include "boing/agent/tracker.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "boing_abi.h"

namespace boing::agent {
namespace {

boing_event_header Header(uint32_t type, uint64_t ts) {
  boing_event_header h{};
  h.type = type;
  h.abi_version = BOING_ABI_VERSION;
  h.ts_ns = ts;
  h.conn.tgid = 42;
  h.conn.fd = 7;
  h.conn.generation = 99;
  h.cgroup_id = 5;
  std::strcpy(h.comm, "server");
  return h;
}

std::vector<uint8_t> OpenRecord() {
  boing_conn_event e{};
  e.hdr = Header(BOING_EV_CONN_OPEN, 1);
  e.family = 2;
  e.role = BOING_ROLE_SERVER;
  e.local_port = 8080;
  e.remote_port = 50000;
  inet_pton(AF_INET, "10.0.0.1", e.local_addr);
  inet_pton(AF_INET, "192.0.2.7", e.remote_addr);
  std::vector<uint8_t> r(sizeof(e));
  std::memcpy(r.data(), &e, sizeof(e));
  return r;
}

std::vector<uint8_t> DataRecord(uint32_t dir, std::string_view bytes, uint64_t ts) {
  boing_data_event e{};
  e.hdr = Header(BOING_EV_DATA, ts);
  e.direction = dir;
  e.len = static_cast<uint32_t>(bytes.size());
  e.captured = e.len;
  std::vector<uint8_t> r(sizeof(e) + bytes.size());
  std::memcpy(r.data(), &e, sizeof(e));
  std::memcpy(r.data() + sizeof(e), bytes.data(), bytes.size());
  return r;
}

TEST(Tracker, RecordsBecomeAnEventWithSensorFactsAndNoRawSecrets) {
  std::vector<Event> events;
  TrackerOptions o;
  o.identity_key = "k";
  o.agent_id = "a1";
  Tracker t(o, [&](Event&& e) { events.push_back(std::move(e)); });
  ASSERT_TRUE(t.OnRecord(OpenRecord()));
  ASSERT_TRUE(t.OnRecord(DataRecord(
      BOING_DIR_INGRESS,
      "GET /v1/x?y=2 HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer sekret\r\nX-Other: 1\r\n\r\n",
      1'000'000)));
  ASSERT_TRUE(t.OnRecord(DataRecord(
      BOING_DIR_EGRESS, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", 51'000'000)));
  ASSERT_EQ(events.size(), 1u);
  const Event& e = events[0];
  EXPECT_EQ(e.method, "GET");
  EXPECT_EQ(e.endpoint, "/v1/x?y=2");
  EXPECT_EQ(e.query, "y=2");
  EXPECT_EQ(e.client_ip, "192.0.2.7");
  EXPECT_EQ(e.server_ip, "10.0.0.1");
  EXPECT_EQ(e.server_port, 8080);
  EXPECT_EQ(e.status_code, 201);
  EXPECT_DOUBLE_EQ(e.latency_ms, 50.0);
  EXPECT_EQ(e.pid, 42);
  EXPECT_EQ(e.comm, "server");
  EXPECT_EQ(e.seq, 1);
  EXPECT_EQ(e.identity, IdentityOf("k", "sekret"));
  std::string json = EventToJson(e);
  EXPECT_EQ(json.find("sekret"), std::string::npos);
  EXPECT_EQ(json.find("X-Other"), std::string::npos);  // not in the allowlist
}

TEST(Tracker, MalformedRecordsAreCounted) {
  Tracker t({}, [](Event&&) {});
  std::vector<uint8_t> tiny(3);
  EXPECT_FALSE(t.OnRecord(tiny));
  auto r = DataRecord(BOING_DIR_INGRESS, "GET / HTTP/1.1\r\n\r\n", 1);
  r.resize(r.size() - 5);  // captured says more than the record holds
  EXPECT_FALSE(t.OnRecord(r));
  EXPECT_EQ(t.stats().bad_records, 2u);
}

TEST(Tracker, RealClientIpBehindTrustedProxy) {
  Cidr proxy;
  ASSERT_TRUE(Cidr::Parse("10.0.0.0/8", proxy));
  HeaderList h = {{"X-Forwarded-For", "203.0.113.9, 10.1.1.1"}};
  EXPECT_EQ(RealClientIp("10.2.2.2", h, {proxy}), "203.0.113.9");
  EXPECT_EQ(RealClientIp("198.51.100.1", h, {proxy}), "198.51.100.1");  // peer not trusted
  HeaderList f = {{"Forwarded", "for=\"[2001:db8::1]:4711\""}};
  EXPECT_EQ(RealClientIp("10.2.2.2", f, {proxy}), "2001:db8::1");
  // Found by fuzzing: text after an embedded NUL passed as part of a valid address, and the
  // server then rejected the whole event.
  HeaderList nul = {{"X-Forwarded-For", std::string("203.0.113.9\0<b>", 16)}};
  EXPECT_EQ(RealClientIp("10.2.2.2", nul, {proxy}), "10.2.2.2");
  EXPECT_FALSE(Cidr::Parse(std::string("10.0.0.0\0/8", 11), proxy));
}

TEST(Tracker, AddressesPrintMappedIpv6AsIpv4) {
  uint8_t a[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
  EXPECT_EQ(AddressToString(10, a), "127.0.0.1");
  uint8_t b[16] = {};
  b[15] = 1;
  EXPECT_EQ(AddressToString(10, b), "::1");
}

// A process in a Kubernetes pod (kubelet systemd-driver cgroup, containerd bundle on the node):
// its events carry the container id, the pod's name and its namespace; a process the runtime does
// not describe gets the pod UID from its cgroup path instead of a name.
TEST(Tracker, EventsAreTaggedWithContainerPodAndNamespace) {
  char tmpl[] = "/tmp/boing-tracker-k8s.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string root = tmpl;
  const std::string id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  const std::string uid = "6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b";
  std::string uid_ = uid;
  for (char& c : uid_) c = c == '-' ? '_' : c;
  std::filesystem::create_directories(root + "/proc/42");
  std::ofstream(root + "/proc/42/cgroup")
      << "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" << uid_
      << ".slice/cri-containerd-" << id << ".scope\n";
  std::filesystem::create_directories(root + "/k8s.io/" + id);
  std::ofstream(root + "/k8s.io/" + id + "/config.json")
      << R"({"annotations":{"io.kubernetes.cri.sandbox-name":"shop-5f7d9-abcde",)"
      << R"("io.kubernetes.cri.sandbox-namespace":"payments","io.kubernetes.cri.sandbox-uid":")"
      << uid << "\"}}";

  auto run = [&](const std::vector<std::string>& runtime_dirs) {
    std::vector<Event> events;
    TrackerOptions o;
    o.proc_root = root + "/proc";
    o.pods.runtime_dirs = runtime_dirs;
    Tracker t(o, [&](Event&& e) { events.push_back(std::move(e)); });
    EXPECT_TRUE(t.OnRecord(OpenRecord()));
    EXPECT_TRUE(t.OnRecord(DataRecord(BOING_DIR_INGRESS, "GET / HTTP/1.1\r\n\r\n", 1'000'000)));
    EXPECT_TRUE(t.OnRecord(
        DataRecord(BOING_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2'000'000)));
    EXPECT_EQ(events.size(), 1u);
    return events.empty() ? Event{} : events[0];
  };
  Event named = run({root + "/k8s.io"});
  EXPECT_EQ(named.container_id, id);
  EXPECT_EQ(named.pod, "shop-5f7d9-abcde");
  EXPECT_EQ(named.k8s_namespace, "payments");
  std::string json = EventToJson(named);
  EXPECT_NE(json.find("\"namespace\":\"payments\""), std::string::npos) << json;

  Event unnamed = run({root + "/no-runtime-state"});
  EXPECT_EQ(unnamed.container_id, id);
  EXPECT_EQ(unnamed.pod, uid);
  EXPECT_EQ(unnamed.k8s_namespace, "");

  std::ofstream(root + "/proc/42/cgroup", std::ios::trunc) << "0::/system.slice/nginx.service\n";
  Event host = run({root + "/k8s.io"});
  EXPECT_EQ(host.container_id, "");
  EXPECT_EQ(host.pod, "");
  EXPECT_EQ(host.k8s_namespace, "");
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace boing::agent
