#include "boing/agent/kubernetes.h"

#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace boing::agent {
namespace {

bool IsHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  }
  return !s.empty();
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A pod UID as the kubelet writes it into a cgroup name: a UUID with '-' (cgroupfs) or '_'
// (systemd, where '-' separates the slice hierarchy), or a static pod's 32-hex hash.
std::string CanonicalPodUid(std::string_view s) {
  if (s.size() == 32 && IsHex(s)) return Lower(s);
  if (s.size() != 36) return {};
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash_pos = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash_pos) {
      if (s[i] != '-' && s[i] != '_') return {};
      out.push_back('-');
    } else {
      if (!IsHex(s.substr(i, 1))) return {};
      out.push_back(s[i]);
    }
  }
  return Lower(out);
}

// "kubepods-burstable-pod<uid>.slice", "kubelet-kubepods-pod<uid>.slice" (systemd driver) or
// "pod<uid>" (cgroupfs driver; also seen without its /kubepods parents from another cgroup
// namespace).
std::string PodUidOfComponent(std::string_view comp) {
  if (StartsWith(comp, "pod")) return CanonicalPodUid(comp.substr(3));
  if (!EndsWith(comp, ".slice") || comp.find("kubepods") == std::string_view::npos) return {};
  comp.remove_suffix(6);
  size_t at = comp.rfind("-pod");
  return at == std::string_view::npos ? std::string() : CanonicalPodUid(comp.substr(at + 4));
}

// The container of one path component: "cri-containerd-<id>.scope", "crio-<id>.scope",
// "docker-<id>.scope", or a bare 64-hex id (cgroupfs driver, Docker's /docker/<id>).
bool ContainerOfComponent(std::string_view comp, CgroupContainer* out) {
  std::string_view rest = comp;
  std::string runtime;
  if (EndsWith(rest, ".scope")) rest.remove_suffix(6);
  struct Prefix {
    std::string_view text;
    const char* runtime;
  };
  for (Prefix p : {Prefix{"cri-containerd-", "containerd"}, Prefix{"crio-conmon-", ""},
                   Prefix{"crio-", "crio"}, Prefix{"docker-", "docker"}}) {
    if (StartsWith(rest, p.text)) {
      if (p.runtime[0] == '\0') return false;  // CRI-O's monitor process, not the container
      rest.remove_prefix(p.text.size());
      runtime = p.runtime;
      break;
    }
  }
  if (rest.size() != 64 || !IsHex(rest)) return false;
  out->container_id = Lower(rest);
  out->runtime = runtime;
  return true;
}

}  // namespace

CgroupContainer ParseCgroupPath(std::string_view path) {
  CgroupContainer out;
  std::vector<std::string_view> comps;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view comp = path.substr(start, slash - start);
    if (!comp.empty() && comp != "." && comp != "..") comps.push_back(comp);
    start = slash + 1;
  }
  bool kubepods = false;  // the kubelet's root (kubepods, kubepods.slice, ...) is in the path
  for (std::string_view comp : comps) {
    if (!out.pod_uid.empty()) break;
    std::string uid = PodUidOfComponent(comp);
    if (!uid.empty()) {
      out.pod_uid = uid;
      // The QoS class may also be in the pod's own slice name (kubepods-burstable-pod<uid>).
      if (comp.find("besteffort") != std::string_view::npos) out.qos = "besteffort";
      if (comp.find("burstable") != std::string_view::npos) out.qos = "burstable";
      kubepods = kubepods || comp.find("kubepods") != std::string_view::npos;
      break;
    }
    if (comp.find("kubepods") != std::string_view::npos) kubepods = true;
    if (!kubepods) continue;
    // systemd: kubepods-burstable.slice; cgroupfs: a "burstable" directory under /kubepods.
    if (comp.find("besteffort") != std::string_view::npos) out.qos = "besteffort";
    if (comp.find("burstable") != std::string_view::npos) out.qos = "burstable";
  }
  // The innermost component naming a container (processes may sit in sub-cgroups of it).
  for (auto it = comps.rbegin(); it != comps.rend(); ++it) {
    if (ContainerOfComponent(*it, &out)) break;
  }
  if (out.pod_uid.empty()) {
    out.qos.clear();
  } else if (out.qos.empty() && kubepods) {
    out.qos = "guaranteed";  // guaranteed pods sit directly under the kubepods root
  }
  return out;
}

CgroupContainer ParseProcCgroup(std::string_view contents) {
  std::vector<std::string_view> v2, v1;
  size_t start = 0;
  while (start < contents.size()) {
    size_t nl = contents.find('\n', start);
    if (nl == std::string_view::npos) nl = contents.size();
    std::string_view line = contents.substr(start, nl - start);
    start = nl + 1;
    // hierarchy-ID:controller-list:cgroup-path (the path may itself contain ':').
    size_t c1 = line.find(':');
    size_t c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    std::string_view path = line.substr(c2 + 1);
    (line.substr(0, c2) == "0:" ? v2 : v1).push_back(path);
  }
  CgroupContainer best;
  for (const auto* list : {&v2, &v1}) {
    for (std::string_view path : *list) {
      CgroupContainer c = ParseCgroupPath(path);
      if (!c.pod_uid.empty() && !c.container_id.empty()) return c;
      if (best.container_id.empty() && best.pod_uid.empty()) best = c;
    }
  }
  return best;
}

bool PodInfoFromOciConfig(std::string_view json, PodInfo* out) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_object() || !j.contains("annotations") || !j["annotations"].is_object()) return false;
  const auto& a = j["annotations"];
  auto get = [&a](std::initializer_list<const char*> keys) -> std::string {
    for (const char* k : keys) {
      auto it = a.find(k);
      if (it != a.end() && it->is_string()) return it->get<std::string>();
    }
    return {};
  };
  PodInfo p;
  p.name = get({"io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"});
  p.k8s_namespace = get({"io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace"});
  p.uid = get({"io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"});
  if (p.name.empty() && p.k8s_namespace.empty()) return false;
  *out = std::move(p);
  return true;
}

PodResolver::PodResolver(PodResolverOptions options) : options_(std::move(options)) {}

PodInfo PodResolver::Lookup(const std::string& id) {
  for (const std::string& dir : options_.runtime_dirs) {
    for (const char* rel : {"/config.json", "/userdata/config.json"}) {
      std::string path = dir + "/" + id + rel;
      struct stat st {};
      if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      if (static_cast<size_t>(st.st_size) > options_.max_config_bytes) continue;
      std::ifstream f(path, std::ios::binary);
      std::stringstream ss;
      ss << f.rdbuf();
      PodInfo p;
      if (PodInfoFromOciConfig(ss.str(), &p)) return p;
    }
  }
  return {};
}

PodInfo PodResolver::Resolve(const CgroupContainer& c) {
  PodInfo p;
  if (!c.container_id.empty()) {
    auto it = cache_.find(c.container_id);
    if (it != cache_.end()) {
      p = it->second;
    } else {
      if (cache_.size() >= options_.max_entries) cache_.clear();
      p = Lookup(c.container_id);
      // A runtime whose state is not there yet (the container is starting) is asked again later;
      // only answers are cached.
      if (!p.name.empty() || !p.k8s_namespace.empty()) cache_[c.container_id] = p;
    }
  }
  if (p.uid.empty()) p.uid = c.pod_uid;
  return p;
}

}  // namespace boing::agent
