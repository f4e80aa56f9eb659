#include "boing/agent/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace boing::agent {
namespace {

constexpr size_t kHeader = 16;  // u32 length, u32 crc, u64 seq

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void Put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t Get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

uint32_t RecordCrc(const uint8_t seq_bytes[8], std::string_view payload) {
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, seq_bytes, 8);
  crc =
      crc32(crc, reinterpret_cast<const Bytef*>(payload.data()), static_cast<uInt>(payload.size()));
  return static_cast<uint32_t>(crc);
}

bool PreadFull(int fd, void* buf, size_t n, uint64_t off) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = pread(fd, p, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
    off += static_cast<uint64_t>(r);
  }
  return true;
}

// Outcome of reading the record at an offset: kOk, kEnd at a clean end of file, kCorrupt for a
// short or damaged record.
enum class ReadResult { kOk, kEnd, kCorrupt };

// Reads a segment's records through one buffer: a pread per chunk (kChunk, or one record when it
// is longer), not two per record; every record is checked (length bound, CRC) as before.
class ChunkReader {
 public:
  static constexpr size_t kChunk = 64 * 1024;
  ChunkReader(int fd, uint64_t file_size) : fd_(fd), size_(file_size) {}

  ReadResult Next(uint64_t* off, uint32_t max_record, uint64_t* seq, std::string* payload) {
    if (*off == size_) return ReadResult::kEnd;
    if (size_ - *off < kHeader) return ReadResult::kCorrupt;
    const uint8_t* h = Have(*off, kHeader);
    if (!h) return ReadResult::kCorrupt;
    uint32_t len = Get32(h);
    if (len > max_record || size_ - *off - kHeader < len) return ReadResult::kCorrupt;
    h = Have(*off, kHeader + len);
    if (!h) return ReadResult::kCorrupt;
    std::string_view body(reinterpret_cast<const char*>(h) + kHeader, len);
    if (RecordCrc(h + 8, body) != Get32(h + 4)) return ReadResult::kCorrupt;
    payload->assign(body);
    *seq = Get64(h + 8);
    *off += kHeader + len;
    return ReadResult::kOk;
  }

 private:
  // The bytes [off, off + n) of the file, from the buffer (refilled from `off` when needed).
  const uint8_t* Have(uint64_t off, size_t n) {
    if (off < buf_off_ || off + n > buf_off_ + buf_.size()) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(std::max(n, kChunk), size_ - off));
      if (want < n) return nullptr;
      buf_.resize(want);
      if (!PreadFull(fd_, buf_.data(), want, off)) {
        buf_.clear();
        return nullptr;
      }
      buf_off_ = off;
    }
    return reinterpret_cast<const uint8_t*>(buf_.data()) + (off - buf_off_);
  }

  int fd_;
  uint64_t size_;
  std::string buf_;
  uint64_t buf_off_ = 0;
};

std::string SegmentName(uint64_t first_seq) {
  char name[32];
  std::snprintf(name, sizeof(name), "%016" PRIx64 ".seg", first_seq);
  return name;
}

}  // namespace

std::unique_ptr<Spool> Spool::Open(const SpoolOptions& options, std::string* error) {
  SpoolOptions o = options;
  if (o.dir.empty()) {
    *error = "spool: no directory";
    return nullptr;
  }
  if (o.segment_bytes == 0) o.segment_bytes = std::clamp<uint64_t>(o.max_bytes / 8, 4096, 64 << 20);
  if (o.segment_bytes < 1024 || o.segment_bytes * 2 > o.max_bytes) {
    *error = "spool: max_bytes (" + std::to_string(o.max_bytes) +
             ") must hold at least two segments of " + std::to_string(o.segment_bytes) + " bytes";
    return nullptr;
  }
  o.max_record_bytes =
      static_cast<uint32_t>(std::min<uint64_t>(o.max_record_bytes, o.segment_bytes - kHeader));
  if (mkdir(o.dir.c_str(), 0700) != 0 && errno != EEXIST) {
    *error = Errno("spool: cannot create " + o.dir);
    return nullptr;
  }
  std::unique_ptr<Spool> s(new Spool(o));
  if (!s->Recover(error)) return nullptr;
  return s;
}

Spool::~Spool() {
  std::string error;
  SyncUpTo(false, &error);
  if (tail_fd_ >= 0) close(tail_fd_);
  for (Segment& s : segments_)
    if (s.sync_fd >= 0) close(s.sync_fd);
}

int Spool::DoSync(int fd) const {
  if (options_.sync_fn) return options_.sync_fn(fd);
  return fdatasync(fd);
}

bool Spool::Recover(std::string* error) {
  {
    FILE* f = std::fopen((options_.dir + "/acked").c_str(), "r");
    if (f) {
      unsigned long long v = 0;
      if (std::fscanf(f, "%llu", &v) == 1) acked_ = v;
      std::fclose(f);
    }
  }
  std::vector<std::pair<uint64_t, std::string>> files;
  DIR* d = opendir(options_.dir.c_str());
  if (!d) {
    *error = Errno("spool: cannot read " + options_.dir);
    return false;
  }
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.size() != 20 || name.substr(16) != ".seg") continue;
    const std::string hex = name.substr(0, 16);  // `end` points into it: keep it alive
    char* end = nullptr;
    uint64_t first = std::strtoull(hex.c_str(), &end, 16);
    if (end && *end == '\0') files.emplace_back(first, options_.dir + "/" + name);
  }
  closedir(d);
  std::sort(files.begin(), files.end());

  uint64_t max_seq = acked_;
  for (auto& [first, path] : files) {
    int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      *error = Errno("spool: cannot open " + path);
      return false;
    }
    struct stat st {};
    fstat(fd, &st);
    uint64_t size = static_cast<uint64_t>(st.st_size);
    Segment seg{path, first, 0, 0, 0, true};
    uint64_t off = 0, seq = 0, prev = max_seq;
    std::string payload;
    ChunkReader reader(fd, size);
    for (;;) {
      const uint64_t at = off;
      ReadResult r = reader.Next(&off, options_.max_record_bytes, &seq, &payload);
      if (r == ReadResult::kEnd) break;
      // Records must go up: anything else is damage, like a torn write. A record out of order
      // is cut with the rest (ReadRecord already stepped past it: it was kept and handed out).
      const bool out_of_order = r == ReadResult::kOk && ((seg.records == 0 && seq < first) ||
                                                         (seg.records > 0 && seq <= prev));
      if (out_of_order) off = at;
      if (r == ReadResult::kCorrupt || out_of_order) {
        stats_.truncated_bytes += size - off;
        if (ftruncate(fd, static_cast<off_t>(off)) != 0) {
          *error = Errno("spool: cannot truncate " + path);
          close(fd);
          return false;
        }
        DoSync(fd);
        break;
      }
      if (seg.records == 0) seg.first_seq = seq;
      seg.last_seq = seq;
      prev = seq;
      ++seg.records;
      if (seq > acked_) ++stats_.recovered;
    }
    close(fd);
    seg.bytes = off;
    if (seg.records == 0 || seg.last_seq <= acked_) {
      unlink(path.c_str());
      continue;
    }
    max_seq = std::max(max_seq, seg.last_seq);
    total_bytes_ += seg.bytes;
    segments_.push_back(std::move(seg));
  }
  next_seq_ = max_seq + 1;
  // What a previous run left is taken as durable, as it always was.
  synced_seq_ = max_seq;
  stats_.acked_seq = acked_;
  return true;
}

bool Spool::OpenTail(uint64_t first_seq, std::string* error) {
  std::string path = options_.dir + "/" + SegmentName(first_seq);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = Errno("spool: cannot create " + path);
    return false;
  }
  // Its directory entry is synced by the next Sync (or right away under kAlways, in Append).
  ++dir_changes_;
  tail_fd_ = fd;
  segments_.push_back(Segment{path, first_seq, 0, 0, 0, true});
  return true;
}

bool Spool::Sync(std::string* error) { return SyncUpTo(false, error); }

bool Spool::SyncClosed(std::string* error) { return SyncUpTo(true, error); }

// Snapshot under mu_ (duplicated descriptors, so that a segment Append drops or closes meanwhile
// cannot hand its descriptor number to another file), sync without it, record the result under it.
bool Spool::SyncUpTo(bool closed_only, std::string* error) {
  if (options_.fsync == FsyncPolicy::kNever) return true;
  std::lock_guard<std::mutex> sync_lock(sync_mu_);
  struct Pending {
    uint64_t first_seq;
    int fd;
  };
  std::vector<Pending> todo;
  uint64_t upto = 0, dir_gen = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    upto = next_seq_ - 1;
    dir_gen = dir_changes_;
    for (size_t i = 0; i < segments_.size(); ++i) {
      const Segment& seg = segments_[i];
      bool is_tail = i + 1 == segments_.size() && tail_fd_ >= 0;
      if (is_tail && closed_only && !seg.synced) upto = std::min(upto, seg.first_seq - 1);
      if (seg.synced || (is_tail && closed_only)) continue;
      int fd = seg.sync_fd >= 0 ? seg.sync_fd : is_tail ? tail_fd_ : -1;
      if (fd < 0) continue;
      int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (dup_fd < 0) {
        *error = Errno("spool: dup " + seg.path);
        for (Pending& p : todo) close(p.fd);
        return false;
      }
      todo.push_back(Pending{seg.first_seq, dup_fd});
    }
    if (todo.empty() && dir_gen == dir_synced_) {
      synced_seq_ = std::max(synced_seq_, upto);
      return true;
    }
  }
  bool ok = true;
  for (Pending& p : todo) {
    if (ok && DoSync(p.fd) != 0) {
      *error = Errno("spool: fdatasync segment " + SegmentName(p.first_seq));
      ok = false;
    }
    close(p.fd);
  }
  if (!ok) return false;
  if (dir_gen != dir_synced_) {
    // New segments' directory entries, after their data (only this thread writes dir_synced_).
    int dfd = open(options_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool dir_ok = dfd >= 0 && (options_.sync_fn ? options_.sync_fn(dfd) : fsync(dfd)) == 0;
    if (!dir_ok) *error = Errno("spool: fsync " + options_.dir);
    if (dfd >= 0) close(dfd);
    if (!dir_ok) return false;
  }
  std::vector<int> to_close;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Pending& p : todo) {
      for (Segment& seg : segments_) {
        if (seg.first_seq != p.first_seq) continue;
        // The tail may have grown since the snapshot: then it still has unsynced records.
        if (seg.last_seq <= upto) {
          seg.synced = true;
          if (seg.sync_fd >= 0) to_close.push_back(seg.sync_fd);
          seg.sync_fd = -1;
        }
        break;
      }
    }
    dir_synced_ = std::max(dir_synced_, dir_gen);
    synced_seq_ = std::max(synced_seq_, upto);
  }
  for (int fd : to_close) close(fd);
  return true;
}

uint64_t Spool::PendingIn(const Segment& s) const {
  if (s.records == 0 || s.last_seq <= acked_) return 0;
  if (s.first_seq > acked_) return s.records;
  // seqs are consecutive inside a segment (one writer, +1 per append).
  return s.last_seq - acked_;
}

void Spool::DropOldest(std::vector<Doomed>& doomed) {
  Segment& s = segments_.front();
  stats_.dropped += PendingIn(s);
  total_bytes_ -= s.bytes;
  doomed.push_back(Doomed{s.path, s.sync_fd});
  segments_.erase(segments_.begin());
}

void Spool::Bury(std::vector<Doomed>& doomed) {
  for (Doomed& d : doomed) {
    unlink(d.path.c_str());
    if (d.fd >= 0) close(d.fd);
  }
  doomed.clear();
}

uint64_t Spool::NextSeq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return next_seq_;
}

bool Spool::Append(uint64_t seq, std::string_view payload, std::string* error) {
  return AppendBatch(seq, std::span<const std::string_view>(&payload, 1), error) == 1;
}

size_t Spool::AppendBatch(uint64_t first_seq, std::span<const std::string_view> payloads,
                          std::string* error) {
  std::vector<Doomed> doomed;
  size_t done = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (first_seq != next_seq_) {
      *error = "spool: append out of order (seq " + std::to_string(first_seq) + ", expected " +
               std::to_string(next_seq_) + ")";
    } else {
      while (done < payloads.size()) {
        size_t n = AppendChunkLocked(payloads.subspan(done), doomed, error);
        if (n == 0) break;
        done += n;
      }
    }
  }
  Bury(doomed);  // unlinking a big file can take a while: not while the reader waits for mu_
  return done;
}

// Appends the records of `payloads` that go into one segment (the tail, or a new one when the
// first does not fit) with one write. Returns how many; 0 with *error set on failure.
size_t Spool::AppendChunkLocked(std::span<const std::string_view> payloads,
                                std::vector<Doomed>& doomed, std::string* error) {
  const uint64_t seq = next_seq_;
  if (payloads[0].size() > options_.max_record_bytes) {
    *error = "spool: record of " + std::to_string(payloads[0].size()) + " bytes exceeds " +
             std::to_string(options_.max_record_bytes);
    return 0;
  }
  // A tail inherited from a previous run is never appended to: a fresh segment starts at open.
  bool need_new = tail_fd_ < 0 ||
                  segments_.back().bytes + kHeader + payloads[0].size() > options_.segment_bytes;
  if (need_new) {
    if (tail_fd_ >= 0) {
      // Closed without a sync: the uplink's next Sync/SyncClosed does it, off this thread.
      Segment& old = segments_.back();
      if (old.synced || options_.fsync == FsyncPolicy::kNever) {
        close(tail_fd_);
      } else {
        old.sync_fd = tail_fd_;
      }
      tail_fd_ = -1;
    }
    if (!OpenTail(seq, error)) return 0;
  }
  // As many records as the segment takes (at least the first: a segment holds any record).
  size_t count = 0;
  uint64_t size = 0;
  const uint64_t room =
      options_.segment_bytes - std::min(options_.segment_bytes, segments_.back().bytes);
  while (count < payloads.size()) {
    uint64_t rec = kHeader + payloads[count].size();
    if (payloads[count].size() > options_.max_record_bytes) break;  // refused on its own turn
    if (count > 0 && size + rec > room) break;
    size += rec;
    ++count;
  }
  while (total_bytes_ + size > cap_bytes_ && segments_.size() > 1) DropOldest(doomed);

  write_buf_.clear();
  for (size_t i = 0; i < count; ++i) {
    uint8_t h[kHeader];
    Put32(h, static_cast<uint32_t>(payloads[i].size()));
    Put64(h + 8, seq + i);
    Put32(h + 4, RecordCrc(h + 8, payloads[i]));
    write_buf_.append(reinterpret_cast<const char*>(h), kHeader);
    write_buf_.append(payloads[i]);
  }
  bool uncut = false;  // a half record stayed at the end of the tail
  auto write_records = [&]() {
    const char* p = write_buf_.data();
    size_t left = write_buf_.size();
    ssize_t n;
    do {
      n = write(tail_fd_, p, left);
    } while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(left)) return 0;
    int err = n < 0 ? errno : ENOSPC;  // a short write: the filesystem ran out of space
    // Leave no partial chunk behind (a reopen would cut a half record anyway).
    if (n > 0 && ftruncate(tail_fd_, static_cast<off_t>(segments_.back().bytes)) != 0) {
      uncut = true;
    }
    return err;
  };
  int err = write_records();
  if ((err == ENOSPC || err == EDQUOT) && !uncut && count > 1) {
    // Out of space: one record at a time from here, as a single Append does, so that what the
    // full disk costs is the oldest segments (below), never the newest records.
    // Segments dropped above for the whole chunk are still on disk: free them first.
    count = 1;
    size = kHeader + payloads[0].size();
    write_buf_.resize(size);
    Bury(doomed);
    err = write_records();
  }
  if ((err == ENOSPC || err == EDQUOT) && !uncut && (segments_.size() > 1 || !doomed.empty())) {
    // The disk is full before max_bytes: what is there is what fits. Keep one segment of
    // headroom below it (the acked file must stay writable for acknowledgements to free space),
    // drop the oldest segments down to that, and free their space now, under the lock: this is
    // rare, and the retry needs the space.
    ++stats_.disk_full;
    uint64_t fit = total_bytes_;
    cap_bytes_ = fit > options_.segment_bytes ? fit - options_.segment_bytes : 0;
    while (total_bytes_ + size > cap_bytes_ && segments_.size() > 1) DropOldest(doomed);
    Bury(doomed);
    err = write_records();
  } else if (err == ENOSPC || err == EDQUOT) {
    ++stats_.disk_full;
  }
  Segment& tail = segments_.back();
  if (err != 0) {
    errno = err;
    *error = Errno("spool: write " + tail.path);
    if (uncut) {  // stop appending to this segment (a reopen cuts the half record)
      if (tail.synced || options_.fsync == FsyncPolicy::kNever) {
        close(tail_fd_);
      } else {
        tail.sync_fd = tail_fd_;
      }
      tail_fd_ = -1;
    }
    return 0;
  }
  if (options_.fsync == FsyncPolicy::kAlways) {
    // The policy asks for it: this thread waits for the disk (and the reader for mu_).
    DoSync(tail_fd_);
    if (dir_synced_ != dir_changes_) {
      int dfd = open(options_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        if ((options_.sync_fn ? options_.sync_fn(dfd) : fsync(dfd)) == 0)
          dir_synced_ = dir_changes_;
        close(dfd);
      }
    }
  } else {
    tail.synced = false;
  }
  if (tail.records == 0) tail.first_seq = seq;
  tail.last_seq = seq + count - 1;
  tail.records += count;
  tail.bytes += size;
  total_bytes_ += size;
  next_seq_ += count;
  stats_.appended += count;
  return count;
}

bool Spool::Read(size_t max_records, size_t max_bytes, std::vector<SpoolRecord>& out,
                 std::string* error) {
  return ReadAfter(0, max_records, max_bytes, out, error);
}

bool Spool::ReadAfter(uint64_t after, size_t max_records, size_t max_bytes,
                      std::vector<SpoolRecord>& out, std::string* error) {
  out.clear();
  // Only what a finished sync covered is handed out (everything appended before this call).
  if (options_.fsync == FsyncPolicy::kBatch && !SyncUpTo(false, error)) return false;
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t limit = options_.fsync == FsyncPolicy::kBatch ? synced_seq_ : UINT64_MAX;
  uint64_t from = std::max(after, acked_);
  size_t bytes = 0;
  for (const Segment& s : segments_) {
    if (out.size() >= max_records || (bytes >= max_bytes && !out.empty())) break;
    if (s.first_seq > limit) break;
    if (PendingIn(s) == 0 || s.last_seq <= from) continue;
    int fd = open(s.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      *error = Errno("spool: cannot open " + s.path);
      return false;
    }
    uint64_t off = 0;
    if (after_seq_ == from + 1 && after_segment_ == s.first_seq) {
      off = after_offset_;
    } else if (read_hint_seq_ == from + 1 && read_hint_segment_ == s.first_seq) {
      off = read_hint_offset_;
    }
    uint64_t seq = 0;
    std::string payload;
    ChunkReader reader(fd, s.bytes);
    while (out.size() < max_records && (bytes < max_bytes || out.empty())) {
      uint64_t at = off;
      ReadResult r = reader.Next(&off, options_.max_record_bytes, &seq, &payload);
      if (r == ReadResult::kEnd) break;
      if (r == ReadResult::kCorrupt) {
        close(fd);
        *error = "spool: corrupt record in " + s.path + " at offset " + std::to_string(at);
        return false;
      }
      if (seq <= from) continue;
      if (seq > limit) break;
      if (out.empty() && from == acked_) {
        read_hint_seq_ = seq;
        read_hint_segment_ = s.first_seq;
        read_hint_offset_ = at;
      }
      // Where the next read (after this batch) starts.
      after_seq_ = seq + 1;
      after_segment_ = s.first_seq;
      after_offset_ = off;
      bytes += payload.size();
      out.push_back(SpoolRecord{seq, std::move(payload)});
      payload.clear();
    }
    close(fd);
  }
  return true;
}

bool Spool::WriteAcked(uint64_t seq, std::string* error) {
  std::string tmp = options_.dir + "/acked.tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = Errno("spool: cannot write " + tmp);
    return false;
  }
  std::string text = std::to_string(seq) + "\n";
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  if (ok && options_.fsync != FsyncPolicy::kNever) ok = DoSync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp.c_str(), (options_.dir + "/acked").c_str()) != 0) {
    *error = Errno("spool: cannot update " + options_.dir + "/acked");
    return false;
  }
  return true;
}

bool Spool::Ack(uint64_t seq, std::string* error) {
  // The acked file is written (and synced) outside mu_; sync_mu_ keeps acks in order.
  std::lock_guard<std::mutex> sync_lock(sync_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (seq <= acked_) return true;
  }
  if (!WriteAcked(seq, error)) return false;
  std::vector<Doomed> doomed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    acked_ = seq;
    stats_.acked_seq = seq;
    // The tail stays (it is still appended to) even when fully acknowledged.
    while (segments_.size() > 1 && segments_.front().last_seq <= acked_) {
      total_bytes_ -= segments_.front().bytes;
      doomed.push_back(Doomed{segments_.front().path, segments_.front().sync_fd});
      segments_.erase(segments_.begin());
    }
    // Everything acknowledged after a full disk: the space may be back, so is the bound.
    if (segments_.size() == 1 && segments_.back().last_seq <= acked_) {
      cap_bytes_ = options_.max_bytes;
    }
    if (after_seq_ == acked_ + 1) {
      read_hint_seq_ = after_seq_;
      read_hint_segment_ = after_segment_;
      read_hint_offset_ = after_offset_;
    }
  }
  Bury(doomed);
  return true;
}

SpoolStats Spool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  SpoolStats s = stats_;
  s.bytes = total_bytes_;
  s.cap_bytes = cap_bytes_;
  s.pending = 0;
  for (const Segment& seg : segments_) s.pending += PendingIn(seg);
  return s;
}

}  // namespace boing::agent
