// The agent's bounded on-disk spool: every event goes through it, and leaves it only when the
// server has acknowledged it (at-least-once; the server deduplicates by (agent_id, seq)).
//
// Layout: `<dir>/<first seq, 16 hex>.seg` segment files of records, appended in seq order, plus
// `<dir>/acked` holding the highest acknowledged seq (written by rename). A record is
// `u32 length | u32 crc32(seq, payload) | u64 seq | payload`, little-endian. Opening a spool scans
// every segment; the first record that is short or fails its CRC ends that segment and the file is
// truncated there (a crash in the middle of an append).
//
// Bound: segments total at most `max_bytes`. When an append would pass it, the oldest segment is
// deleted and its unacknowledged records are counted as dropped. A full disk (ENOSPC/EDQUOT on an
// append) is handled the same way: the spool learns the size that fit, lowers its bound to that
// minus one segment (the headroom keeps the `acked` file writable, so acknowledgements still free
// space), drops its oldest segments down to it and retries the append once; the bound returns to
// `max_bytes` when the backlog has been acknowledged. seq numbers are the spool's to
// hand out (NextSeq): they continue after the highest seq found on disk or acknowledged, so they
// are monotonic across restarts.
//
// fsync policy (FsyncPolicy):
//  - kBatch (default): a segment is fsync'ed before any of its records is read for sending, and
//    after it is closed. Whatever the server may have seen is on disk, so after a power loss a seq
//    is never handed out twice for different events. Records appended since the last send are
//    lost on power loss (not on an agent crash: they are in the page cache).
//  - kAlways: fsync after every append, once per AppendBatch write, before it returns (slow: the
//    appending thread waits for the disk; for hosts whose events are rare and precious).
//  - kNever: no fsync; survives agent crashes, not power loss.
// The `acked` file is renamed into place without fsync under kNever: going back in time only
// resends events the server then reports as duplicates.
//
// Threads: one thread appends (the capture thread, which must keep draining the kernel's ring
// buffer) while another reads, syncs and acknowledges (the uplink). Under kBatch and kNever the
// appending thread never waits for the disk to sync, nor for a lock held across a sync: Append
// only writes (a segment that fills up is closed without a sync and its directory entry is not
// synced there either), and Sync/ReadAfter/Ack sync outside the lock that Append, NextSeq and
// stats take, on duplicated descriptors. ReadAfter hands out only records that a finished sync
// covered (everything appended before the ReadAfter call began), so the guarantee above holds.
// SyncClosed syncs segments closed since the last sync (the uplink calls it when it wakes, also
// while the server is down and nothing is read).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace boing::agent {

enum class FsyncPolicy { kBatch, kAlways, kNever };

struct SpoolOptions {
  std::string dir;
  uint64_t max_bytes = 256ull << 20;
  uint64_t segment_bytes = 0;  // 0: max_bytes / 8, clamped to [4 KiB, 64 MiB]
  FsyncPolicy fsync = FsyncPolicy::kBatch;
  uint32_t max_record_bytes = 1u << 20;  // longer records are refused (and found corrupt on open)
  // Test seam: called instead of fdatasync (segments, the acked file) and fsync (the directory).
  std::function<int(int fd)> sync_fn;
};

struct SpoolRecord {
  uint64_t seq = 0;
  std::string payload;
};

struct SpoolStats {
  uint64_t appended = 0;         // records appended since open
  uint64_t dropped = 0;          // unacknowledged records deleted to stay under max_bytes
  uint64_t recovered = 0;        // records found on disk at open (unacknowledged)
  uint64_t truncated_bytes = 0;  // torn or corrupt bytes cut off at open
  uint64_t pending = 0;          // unacknowledged records now
  uint64_t bytes = 0;            // total size of the segment files now
  uint64_t acked_seq = 0;
  uint64_t disk_full = 0;  // appends the filesystem refused for lack of space (see above)
  uint64_t cap_bytes = 0;  // the bound now: max_bytes, or less after a full disk
};

class Spool {
 public:
  // Creates the directory (0700) if needed and recovers what is there.
  static std::unique_ptr<Spool> Open(const SpoolOptions& options, std::string* error);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // The seq the next Append must carry.
  uint64_t NextSeq() const;
  // Appends one record with seq == NextSeq(). False (with *error) on an I/O error or a record
  // larger than max_record_bytes; the seq is then not consumed.
  bool Append(uint64_t seq, std::string_view payload, std::string* error);
  // Appends records with the seqs first_seq (== NextSeq()), first_seq + 1, ... with one write per
  // segment they go into (the capture thread appends what one ring-buffer poll produced). Returns
  // how many were appended, in order; fewer than payloads.size() with *error set on an I/O error
  // or a record larger than max_record_bytes (that record and the ones after it are not
  // appended, their seqs not consumed). Same bound, drop and fsync rules as Append: under kAlways
  // the sync happens once per write, before this returns.
  size_t AppendBatch(uint64_t first_seq, std::span<const std::string_view> payloads,
                     std::string* error);
  // The longest payload Append takes.
  uint32_t max_record_bytes() const { return options_.max_record_bytes; }
  // Up to max_records / max_bytes (at least one record) of the oldest unacknowledged records, in
  // seq order. Does not consume them.
  bool Read(size_t max_records, size_t max_bytes, std::vector<SpoolRecord>& out,
            std::string* error);
  // The same for the unacknowledged records with seq > `after` (batches already in flight are
  // skipped).
  bool ReadAfter(uint64_t after, size_t max_records, size_t max_bytes,
                 std::vector<SpoolRecord>& out, std::string* error);
  // Makes every record appended before the call durable (segments, then the directory entries of
  // new segments). ReadAfter does this itself under kBatch; a no-op under kNever.
  bool Sync(std::string* error);
  // Syncs only the segments that were closed since the last sync (not the tail).
  bool SyncClosed(std::string* error);
  // Everything with seq <= `seq` was acknowledged: deletes segments that hold nothing else.
  bool Ack(uint64_t seq, std::string* error);
  SpoolStats stats() const;

 private:
  struct Segment {
    std::string path;
    uint64_t first_seq = 0;
    uint64_t last_seq = 0;  // 0 when empty
    uint64_t records = 0;
    uint64_t bytes = 0;
    bool synced = true;
    int sync_fd = -1;  // a closed segment keeps its descriptor until it has been synced
  };
  struct Doomed {  // a segment to unlink (and descriptor to close) once mu_ is released
    std::string path;
    int fd = -1;
  };

  explicit Spool(SpoolOptions options)
      : options_(std::move(options)), cap_bytes_(options_.max_bytes) {}
  bool Recover(std::string* error);
  bool OpenTail(uint64_t first_seq, std::string* error);
  size_t AppendChunkLocked(std::span<const std::string_view> payloads, std::vector<Doomed>& doomed,
                           std::string* error);
  bool SyncUpTo(bool closed_only, std::string* error);
  int DoSync(int fd) const;
  void DropOldest(std::vector<Doomed>& doomed);
  static void Bury(std::vector<Doomed>& doomed);
  bool WriteAcked(uint64_t seq, std::string* error);
  uint64_t PendingIn(const Segment& s) const;

  SpoolOptions options_;
  // mu_ guards the state below and is never held across a sync or an fsync'ed file write;
  // sync_mu_ serialises the syncers (Sync, the acked file) and is never taken by Append.
  mutable std::mutex mu_;
  std::mutex sync_mu_;
  std::vector<Segment> segments_;  // oldest first; back() is open for appends
  int tail_fd_ = -1;
  std::string write_buf_;  // records of one AppendChunkLocked write
  uint64_t next_seq_ = 1;
  uint64_t acked_ = 0;
  uint64_t synced_seq_ = 0;   // every record up to here is durable (kBatch reads stop there)
  uint64_t dir_changes_ = 0;  // segments created so far (their directory entries need an fsync)
  uint64_t dir_synced_ = 0;   // dir_changes_ as of the last directory fsync
  // Read hints, so that a read does not rescan a segment from its start: where record
  // read_hint_seq_ is (segment by first seq, byte offset), and where the record after the last
  // one handed out is (becomes the hint when that batch is acknowledged).
  uint64_t read_hint_seq_ = 0;
  uint64_t read_hint_segment_ = 0;
  uint64_t read_hint_offset_ = 0;
  uint64_t after_seq_ = 0;
  uint64_t after_segment_ = 0;
  uint64_t after_offset_ = 0;
  uint64_t total_bytes_ = 0;
  uint64_t cap_bytes_ = 0;  // max_bytes, lowered to what fit when the disk was full
  SpoolStats stats_;
};

}  // namespace boing::agent
