#include "boing/agent/tls_discovery.h"

#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace boing::agent {
namespace {

bool IsLibssl(std::string_view path) {
  size_t slash = path.rfind('/');
  std::string_view base = path.substr(slash == std::string_view::npos ? 0 : slash + 1);
  return base.rfind("libssl", 0) == 0 && base.find(".so") != std::string_view::npos;
}

std::vector<uint32_t> AllPids() {
  std::vector<uint32_t> pids;
  DIR* d = opendir("/proc");
  if (!d) return pids;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    unsigned long v = std::strtoul(e->d_name, &end, 10);
    if (end && *end == '\0' && v > 0) pids.push_back(static_cast<uint32_t>(v));
  }
  closedir(d);
  return pids;
}

uint32_t ParentOf(uint32_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  std::getline(f, s);
  size_t close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(s.substr(close + 2));
  std::string state;
  uint32_t ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

}  // namespace

bool ElfDefinesSymbol(const std::string& path, std::string_view symbol) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof(Elf64_Ehdr))) {
    close(fd);
    return false;
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return false;
  const auto* base = static_cast<const uint8_t*>(map);
  bool found = false;
  auto in_file = [&](uint64_t off, uint64_t len) { return off <= size && len <= size - off; };

  Elf64_Ehdr eh;
  std::memcpy(&eh, base, sizeof(eh));
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_ident[EI_CLASS] == ELFCLASS64 &&
      eh.e_shentsize == sizeof(Elf64_Shdr) &&
      in_file(eh.e_shoff, static_cast<uint64_t>(eh.e_shnum) * sizeof(Elf64_Shdr))) {
    const auto* sh = reinterpret_cast<const Elf64_Shdr*>(base + eh.e_shoff);
    for (int i = 0; i < eh.e_shnum && !found; ++i) {
      if (sh[i].sh_type != SHT_SYMTAB && sh[i].sh_type != SHT_DYNSYM) continue;
      if (sh[i].sh_link >= eh.e_shnum || sh[i].sh_entsize != sizeof(Elf64_Sym)) continue;
      const Elf64_Shdr& strtab = sh[sh[i].sh_link];
      if (!in_file(sh[i].sh_offset, sh[i].sh_size) || !in_file(strtab.sh_offset, strtab.sh_size))
        continue;
      const char* strs = reinterpret_cast<const char*>(base + strtab.sh_offset);
      size_t n = sh[i].sh_size / sizeof(Elf64_Sym);
      for (size_t j = 0; j < n; ++j) {
        Elf64_Sym sym;
        std::memcpy(&sym, base + sh[i].sh_offset + j * sizeof(Elf64_Sym), sizeof(sym));
        if (sym.st_shndx == SHN_UNDEF || ELF64_ST_TYPE(sym.st_info) != STT_FUNC) continue;
        if (sym.st_name >= strtab.sh_size) continue;
        size_t max = strtab.sh_size - sym.st_name;
        std::string_view name(strs + sym.st_name, strnlen(strs + sym.st_name, max));
        if (name == symbol) {
          found = true;
          break;
        }
      }
    }
  }
  munmap(map, size);
  return found;
}

std::vector<SslBinary> TlsDiscovery::Scan(uint32_t pid) {
  std::vector<SslBinary> out;
  std::string proc = "/proc/" + std::to_string(pid);
  char exe_buf[4096];
  ssize_t n = readlink((proc + "/exe").c_str(), exe_buf, sizeof(exe_buf) - 1);
  std::string exe = n > 0 ? std::string(exe_buf, static_cast<size_t>(n)) : std::string();

  std::ifstream maps(proc + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    // address perms offset dev inode path
    std::istringstream ls(line);
    std::string addr, perms, offset, dev, path;
    uint64_t inode = 0;
    if (!(ls >> addr >> perms >> offset >> dev >> inode)) continue;
    std::getline(ls, path);
    size_t start = path.find_first_not_of(' ');
    if (start == std::string::npos || inode == 0 || perms.find('x') == std::string::npos) continue;
    path = path.substr(start);
    if (path.empty() || path[0] != '/') continue;
    bool libssl = IsLibssl(path);
    if (!libssl && path != exe) continue;
    if (!seen_.insert({dev, inode}).second) continue;
    std::string usable = proc + "/root" + path;
    if (access(usable.c_str(), R_OK) != 0) usable = path;
    if (!ElfDefinesSymbol(usable, "SSL_read")) continue;
    out.push_back(SslBinary{usable, path, !libssl});
  }
  return out;
}

std::vector<uint32_t> ProcessesInScope(const std::vector<uint32_t>& pids,
                                       const std::vector<std::string>& cgroup_dirs) {
  if (pids.empty() && cgroup_dirs.empty()) return AllPids();
  std::vector<uint32_t> out;
  if (!pids.empty()) {
    std::map<uint32_t, uint32_t> parent;
    for (uint32_t p : AllPids()) parent[p] = ParentOf(p);
    for (const auto& [p, pp] : parent) {
      for (uint32_t cur = p, depth = 0; cur > 1 && depth < 64; cur = parent[cur], ++depth) {
        bool hit = false;
        for (uint32_t want : pids) hit = hit || cur == want;
        if (hit) {
          out.push_back(p);
          break;
        }
        if (!parent.count(cur)) break;
      }
    }
  }
  // A scoped cgroup includes its descendants (as in the kernel's scope check).
  auto add_procs = [&out](const std::filesystem::path& dir) {
    std::ifstream f(dir / "cgroup.procs");
    uint32_t p = 0;
    while (f >> p) out.push_back(p);
  };
  for (const std::string& dir : cgroup_dirs) {
    add_procs(dir);
    std::error_code ec;
    for (std::filesystem::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
         it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) add_procs(it->path());
    }
  }
  return out;
}

}  // namespace boing::agent
