// Container and pod facts from cgroup paths named the way the kubelet (systemd and cgroupfs
// drivers) and the CRI runtimes name them, and pod names from OCI bundles as containerd and CRI-O
// write them.
#include "boing/agent/kubernetes.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace boing::agent {
namespace {

const std::string kId = "3f2b0c8d9e1a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c";
const std::string kUid = "8d5e3b0a-6c1f-4e2d-9a7b-1c2d3e4f5a6b";
const std::string kUidUnderscored = "8d5e3b0a_6c1f_4e2d_9a7b_1c2d3e4f5a6b";

TEST(CgroupPath, SystemdDriverBurstableContainerd) {
  auto c = ParseCgroupPath("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" +
                           kUidUnderscored + ".slice/cri-containerd-" + kId + ".scope");
  EXPECT_EQ(c.pod_uid, kUid);
  EXPECT_EQ(c.container_id, kId);
  EXPECT_EQ(c.runtime, "containerd");
  EXPECT_EQ(c.qos, "burstable");
}

TEST(CgroupPath, SystemdDriverBestEffortCrio) {
  auto c = ParseCgroupPath("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" +
                           kUidUnderscored + ".slice/crio-" + kId + ".scope");
  EXPECT_EQ(c.pod_uid, kUid);
  EXPECT_EQ(c.container_id, kId);
  EXPECT_EQ(c.runtime, "crio");
  EXPECT_EQ(c.qos, "besteffort");
}

TEST(CgroupPath, SystemdDriverGuaranteedPodSitsUnderTheRoot) {
  auto c = ParseCgroupPath("/kubepods.slice/kubepods-pod" + kUidUnderscored +
                           ".slice/cri-containerd-" + kId + ".scope");
  EXPECT_EQ(c.pod_uid, kUid);
  EXPECT_EQ(c.container_id, kId);
  EXPECT_EQ(c.qos, "guaranteed");
}

TEST(CgroupPath, CgroupfsDriver) {
  auto b = ParseCgroupPath("/kubepods/burstable/pod" + kUid + "/" + kId);
  EXPECT_EQ(b.pod_uid, kUid);
  EXPECT_EQ(b.container_id, kId);
  EXPECT_EQ(b.runtime, "") << "the cgroupfs driver does not name the runtime";
  EXPECT_EQ(b.qos, "burstable");
  auto g = ParseCgroupPath("/kubepods/pod" + kUid + "/" + kId);
  EXPECT_EQ(g.pod_uid, kUid);
  EXPECT_EQ(g.qos, "guaranteed");
  auto e = ParseCgroupPath("/kubepods/besteffort/pod" + kUid + "/" + kId);
  EXPECT_EQ(e.qos, "besteffort");
}

TEST(CgroupPath, KindNestedKubeletRootAndDockerRuntime) {
  auto c = ParseCgroupPath(
      "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/"
      "kubelet-kubepods-burstable-pod" +
      kUidUnderscored + ".slice/docker-" + kId + ".scope");
  EXPECT_EQ(c.pod_uid, kUid);
  EXPECT_EQ(c.container_id, kId);
  EXPECT_EQ(c.runtime, "docker");
  EXPECT_EQ(c.qos, "burstable");
}

TEST(CgroupPath, SeenFromAnotherCgroupNamespace) {
  // The agent in its own pod (cgroupns private) reads paths relative to its own cgroup.
  auto c = ParseCgroupPath("/../../kubepods-besteffort-pod" + kUidUnderscored +
                           ".slice/cri-containerd-" + kId + ".scope");
  EXPECT_EQ(c.pod_uid, kUid);
  EXPECT_EQ(c.container_id, kId);
  EXPECT_EQ(c.qos, "besteffort");
  auto f = ParseCgroupPath("/../../pod" + kUid + "/" + kId);
  EXPECT_EQ(f.pod_uid, kUid);
  EXPECT_EQ(f.container_id, kId);
  EXPECT_EQ(f.qos, "") << "no kubepods root in sight: the class is unknown, not guessed";
}

TEST(CgroupPath, StaticPodHashUidAndUpperCaseHex) {
  const std::string hash = "e3b0c44298fc1c149afbf4c8996fb924";
  auto c = ParseCgroupPath("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" +
                           hash + ".slice/cri-containerd-" + kId + ".scope");
  EXPECT_EQ(c.pod_uid, hash);
  std::string upper = kId;
  for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  EXPECT_EQ(ParseCgroupPath("/docker/" + upper).container_id, kId);
}

TEST(CgroupPath, ProcessInASubCgroupOfTheContainer) {
  auto c = ParseCgroupPath("/kubepods/burstable/pod" + kUid + "/" + kId + "/worker");
  EXPECT_EQ(c.container_id, kId);
  EXPECT_EQ(c.pod_uid, kUid);
}

TEST(CgroupPath, PlainContainersAndHostProcesses) {
  auto d = ParseCgroupPath("/system.slice/docker-" + kId + ".scope");
  EXPECT_EQ(d.container_id, kId);
  EXPECT_EQ(d.runtime, "docker");
  EXPECT_EQ(d.pod_uid, "");
  EXPECT_EQ(d.qos, "");
  auto h = ParseCgroupPath("/system.slice/nginx.service");
  EXPECT_EQ(h.container_id, "");
  EXPECT_EQ(h.pod_uid, "");
  // The pod's own slice (e.g. the sandbox's cgroup) without a container.
  auto p = ParseCgroupPath("/kubepods.slice/kubepods-pod" + kUidUnderscored + ".slice");
  EXPECT_EQ(p.pod_uid, kUid);
  EXPECT_EQ(p.container_id, "");
}

TEST(CgroupPath, NearMissesAreNotTakenForIds) {
  EXPECT_EQ(ParseCgroupPath("/kubepods/burstable/pod1234/" + kId).pod_uid, "") << "short uid";
  EXPECT_EQ(ParseCgroupPath("/kubepods/burstable/pod" + kUid + "/" + kId.substr(1)).container_id,
            "")
      << "63 hex digits";
  std::string bad = kUid;
  bad[0] = 'g';
  EXPECT_EQ(ParseCgroupPath("/kubepods/pod" + bad + "/" + kId).pod_uid, "");
  // CRI-O's conmon monitor is not the container.
  EXPECT_EQ(ParseCgroupPath("/kubepods.slice/kubepods-pod" + kUidUnderscored +
                            ".slice/crio-conmon-" + kId + ".scope")
                .container_id,
            "");
  // A slice that mentions "pod" outside the kubepods tree.
  EXPECT_EQ(ParseCgroupPath("/user.slice/user-podman-pod" + kUidUnderscored + ".slice").pod_uid,
            "");
}

TEST(ProcCgroup, UnifiedLineFirstThenV1Lines) {
  std::string v2 = "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" +
                   kUidUnderscored + ".slice/cri-containerd-" + kId + ".scope\n";
  auto c = ParseProcCgroup(v2);
  EXPECT_EQ(c.pod_uid, kUid);
  EXPECT_EQ(c.container_id, kId);
  // Hybrid cgroup v1 host: controller lines carry the kubelet's path, the unified one does not.
  std::string hybrid = "12:pids:/kubepods/besteffort/pod" + kUid + "/" + kId +
                       "\n"
                       "11:cpu,cpuacct:/kubepods/besteffort/pod" +
                       kUid + "/" + kId +
                       "\n"
                       "1:name=systemd:/system.slice/containerd.service\n"
                       "0::/system.slice/containerd.service\n";
  auto h = ParseProcCgroup(hybrid);
  EXPECT_EQ(h.pod_uid, kUid);
  EXPECT_EQ(h.container_id, kId);
  EXPECT_EQ(h.qos, "besteffort");
  EXPECT_EQ(ParseProcCgroup("0::/user.slice/user-1000.slice/session-2.scope\n").container_id, "");
  EXPECT_EQ(ParseProcCgroup("garbage without colons\n\n").pod_uid, "");
}

TEST(OciConfig, ContainerdAndCrioAnnotations) {
  PodInfo p;
  ASSERT_TRUE(PodInfoFromOciConfig(R"({"ociVersion":"1.1.0","process":{"args":["nginx"]},
    "annotations":{"io.kubernetes.cri.container-name":"web","io.kubernetes.cri.container-type":
    "container","io.kubernetes.cri.sandbox-name":"shop-7d4b9c7f6d-x2x8q",
    "io.kubernetes.cri.sandbox-namespace":"payments","io.kubernetes.cri.sandbox-uid":")" +
                                       kUid + R"("}})",
                                   &p));
  EXPECT_EQ(p.name, "shop-7d4b9c7f6d-x2x8q");
  EXPECT_EQ(p.k8s_namespace, "payments");
  EXPECT_EQ(p.uid, kUid);
  ASSERT_TRUE(PodInfoFromOciConfig(R"({"annotations":{"io.kubernetes.pod.name":"api-0",
    "io.kubernetes.pod.namespace":"default","io.kubernetes.pod.uid":"u1",
    "io.kubernetes.container.name":"api"}})",
                                   &p));
  EXPECT_EQ(p.name, "api-0");
  EXPECT_EQ(p.k8s_namespace, "default");
  EXPECT_FALSE(PodInfoFromOciConfig(R"({"annotations":{"org.opencontainers.image.ref":"x"}})", &p));
  EXPECT_FALSE(PodInfoFromOciConfig("{not json", &p));
  EXPECT_FALSE(PodInfoFromOciConfig(R"({"annotations":["io.kubernetes.pod.name"]})", &p));
}

class PodResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/boing-k8s-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void Write(const std::string& rel, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(root_ + "/" + rel).parent_path());
    std::ofstream(root_ + "/" + rel) << text;
  }
  std::string root_;
};

TEST_F(PodResolverTest, ContainerdAndCrioBundleLayouts) {
  Write("containerd/" + kId + "/config.json",
        R"({"annotations":{"io.kubernetes.cri.sandbox-name":"web-1",
        "io.kubernetes.cri.sandbox-namespace":"shop","io.kubernetes.cri.sandbox-uid":")" +
            kUid + "\"}}");
  const std::string crio_id(64, 'c');
  Write(
      "crio/" + crio_id + "/userdata/config.json",
      R"({"annotations":{"io.kubernetes.pod.name":"db-0","io.kubernetes.pod.namespace":"data"}})");
  PodResolverOptions o;
  o.runtime_dirs = {root_ + "/containerd", root_ + "/crio"};
  PodResolver r(o);
  CgroupContainer c{kId, "containerd", kUid, "burstable"};
  PodInfo p = r.Resolve(c);
  EXPECT_EQ(p.name, "web-1");
  EXPECT_EQ(p.k8s_namespace, "shop");
  EXPECT_EQ(p.uid, kUid);
  PodInfo q = r.Resolve(CgroupContainer{crio_id, "crio", "", ""});
  EXPECT_EQ(q.name, "db-0");
  EXPECT_EQ(q.k8s_namespace, "data");

  // Answers are cached per container id: the bundle going away does not change them.
  std::filesystem::remove_all(root_ + "/containerd");
  EXPECT_EQ(r.Resolve(c).name, "web-1");
  r.Forget(kId);
  PodInfo gone = r.Resolve(c);
  EXPECT_EQ(gone.name, "");
  EXPECT_EQ(gone.uid, kUid) << "the cgroup path's UID remains";
}

TEST_F(PodResolverTest, MissingOversizedOrForeignBundlesGiveNoName) {
  const std::string big_id(64, 'b');
  Write(
      "rt/" + big_id + "/config.json",
      R"({"annotations":{"io.kubernetes.pod.name":"big","io.kubernetes.pod.namespace":"x"},"pad":")" +
          std::string(2000, 'p') + "\"}");
  PodResolverOptions o;
  o.runtime_dirs = {root_ + "/rt", root_ + "/does-not-exist"};
  o.max_config_bytes = 1024;
  PodResolver r(o);
  EXPECT_EQ(r.Resolve(CgroupContainer{big_id, "", kUid, ""}).name, "") << "over the size bound";
  EXPECT_EQ(r.Resolve(CgroupContainer{std::string(64, 'd'), "", kUid, ""}).uid, kUid);
  // A container that appears later is found once its bundle exists (misses are not cached).
  const std::string late(64, 'e');
  EXPECT_EQ(r.Resolve(CgroupContainer{late, "", "", ""}).name, "");
  Write("rt/" + late + "/config.json",
        R"({"annotations":{"io.kubernetes.pod.name":"late","io.kubernetes.pod.namespace":"y"}})");
  EXPECT_EQ(r.Resolve(CgroupContainer{late, "", "", ""}).name, "late");
}

}  // namespace
}  // namespace boing::agent
