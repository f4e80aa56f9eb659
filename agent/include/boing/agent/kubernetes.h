// Where a process runs: container id, and for Kubernetes the pod and its namespace.
//
// The cgroup path says the container id and the pod UID, the way the kubelet and the container
// runtimes name cgroups:
//   systemd driver:  /kubepods.slice/kubepods-burstable.slice/
//                      kubepods-burstable-pod<uid with _>.slice/cri-containerd-<id>.scope
//                    (guaranteed pods: kubepods-pod<uid>.slice directly under kubepods.slice;
//                    CRI-O: crio-<id>.scope; Docker: docker-<id>.scope)
//   cgroupfs driver: /kubepods/burstable/pod<uid>/<id>   (guaranteed: /kubepods/pod<uid>/<id>)
// and nested roots such as kind's /kubelet.slice/kubelet-kubepods.slice/... or the "/../.."
// prefix a reader in another cgroup namespace sees. Static pods have a 32-hex UID (a hash).
//
// The pod's name and namespace are not in the cgroup path. PodResolver reads them from the
// container runtime's state on the node: the OCI bundle (config.json) of the container, whose
// annotations the CRI runtimes set (containerd: io.kubernetes.cri.sandbox-name/-namespace/-uid;
// CRI-O: io.kubernetes.pod.name/.namespace/.uid).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace boing::agent {

struct CgroupContainer {
  std::string container_id;  // 64 hex digits, "" when the path names none
  std::string runtime;       // "containerd", "crio", "docker", "" (cgroupfs driver: unknown)
  std::string pod_uid;       // canonical (dashes), "" outside a Kubernetes pod
  std::string qos;           // "guaranteed", "burstable", "besteffort"; "" unknown or no pod
};

// One cgroup path, e.g. the part after "0::" in /proc/PID/cgroup.
CgroupContainer ParseCgroupPath(std::string_view path);
// The whole of /proc/PID/cgroup: the unified hierarchy's line ("0::PATH") first, then cgroup v1
// lines, the first that names a container or a pod wins.
CgroupContainer ParseProcCgroup(std::string_view contents);

struct PodInfo {
  std::string name;
  std::string k8s_namespace;
  std::string uid;
};

struct PodResolverOptions {
  // Directories holding one subdirectory per container id with the OCI config.json in it
  // (containerd: DIR/ID/config.json; CRI-O: DIR/ID/userdata/config.json).
  std::vector<std::string> runtime_dirs = {"/run/containerd/io.containerd.runtime.v2.task/k8s.io",
                                           "/run/containers/storage/overlay-containers"};
  size_t max_config_bytes = 4 << 20;  // a larger config.json is skipped
  size_t max_entries = 4096;          // cached lookups (cleared when full)
};

class PodResolver {
 public:
  explicit PodResolver(PodResolverOptions options = {});
  // Name, namespace and UID of the container's pod; empty fields when the runtime's state does
  // not say (the UID then comes from the cgroup path). Cached per container id.
  PodInfo Resolve(const CgroupContainer& c);
  void Forget(const std::string& container_id) { cache_.erase(container_id); }

 private:
  PodInfo Lookup(const std::string& container_id);

  PodResolverOptions options_;
  std::unordered_map<std::string, PodInfo> cache_;
};

// Parses an OCI config.json's annotations into *out; false when it is not JSON or names no pod.
bool PodInfoFromOciConfig(std::string_view json, PodInfo* out);

}  // namespace boing::agent
