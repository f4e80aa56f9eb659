// Finds the OpenSSL code a process runs: shared libssl mapped from /proc/PID/maps, and OpenSSL
// linked statically into the executable (found by its SSL_read symbol, as in Node.js).
//
// Each library file is reported once (deduplicated by device and inode), because a uprobe on a
// file applies to every process that maps it.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boing::agent {

struct SslBinary {
  std::string path;         // path usable from this mount namespace (/proc/PID/root/...)
  std::string mapped_path;  // as the process sees it
  bool static_openssl = false;
};

class TlsDiscovery {
 public:
  // New OpenSSL binaries mapped by `pid` since the last call. Unreadable processes yield nothing.
  std::vector<SslBinary> Scan(uint32_t pid);
  size_t known() const { return seen_.size(); }

 private:
  std::set<std::pair<std::string, uint64_t>> seen_;  // (device, inode), OpenSSL or not
};

// True when the ELF file at `path` defines `symbol` in .symtab or .dynsym (a function with code).
bool ElfDefinesSymbol(const std::string& path, std::string_view symbol);

// Processes to scan: `pids` and their descendants, the members of cgroup directories, or every
// process when both are empty.
std::vector<uint32_t> ProcessesInScope(const std::vector<uint32_t>& pids,
                                       const std::vector<std::string>& cgroup_dirs);

}  // namespace boing::agent
