#include "boing/agent/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace boing::agent {
namespace {

namespace fs = std::filesystem;

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/boing-spool-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    opts_.dir = dir_ + "/spool";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Spool> Open() {
    std::string error;
    auto s = Spool::Open(opts_, &error);
    EXPECT_NE(s, nullptr) << error;
    return s;
  }
  static std::string Payload(uint64_t seq, size_t size = 40) {
    std::string p = "{\"seq\":" + std::to_string(seq) + ",\"pad\":\"";
    while (p.size() + 2 < size) p += 'x';
    return p + "\"}";
  }
  static void AppendN(Spool& s, int n, size_t size = 40) {
    for (int i = 0; i < n; ++i) {
      std::string error;
      uint64_t seq = s.NextSeq();
      ASSERT_TRUE(s.Append(seq, Payload(seq, size), &error)) << error;
    }
  }
  static std::vector<uint64_t> Seqs(Spool& s, size_t max = 100000, size_t bytes = 1 << 30) {
    std::vector<SpoolRecord> recs;
    std::string error;
    EXPECT_TRUE(s.Read(max, bytes, recs, &error)) << error;
    std::vector<uint64_t> out;
    for (const auto& r : recs) {
      EXPECT_EQ(r.payload, Payload(r.seq, r.payload.size())) << "payload of seq " << r.seq;
      out.push_back(r.seq);
    }
    return out;
  }
  std::vector<std::string> Segments() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(opts_.dir))
      if (e.path().extension() == ".seg") out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  static std::vector<uint64_t> Range(uint64_t from, uint64_t to) {
    std::vector<uint64_t> v;
    for (uint64_t i = from; i <= to; ++i) v.push_back(i);
    return v;
  }

  std::string dir_;
  SpoolOptions opts_;
};

TEST_F(SpoolTest, ReadsInSeqOrderAndOnlyAckRemoves) {
  auto s = Open();
  EXPECT_EQ(s->NextSeq(), 1u);
  AppendN(*s, 10);
  EXPECT_EQ(Seqs(*s, 4), Range(1, 4));
  EXPECT_EQ(Seqs(*s, 4), Range(1, 4)) << "a read without ack must not consume";
  std::string error;
  ASSERT_TRUE(s->Ack(4, &error)) << error;
  EXPECT_EQ(Seqs(*s, 4), Range(5, 8));
  ASSERT_TRUE(s->Ack(8, &error));
  AppendN(*s, 2);
  EXPECT_EQ(Seqs(*s), Range(9, 12));
  EXPECT_EQ(s->stats().pending, 4u);
}

TEST_F(SpoolTest, ReadAfterSkipsRecordsAlreadyInFlight) {
  opts_.max_bytes = 1 << 20;
  opts_.segment_bytes = 1024;  // several segments
  auto s = Open();
  AppendN(*s, 100);
  std::vector<SpoolRecord> recs;
  std::string error;
  uint64_t after = 0;
  std::vector<uint64_t> got;
  while (true) {
    ASSERT_TRUE(s->ReadAfter(after, 7, 1 << 20, recs, &error)) << error;
    if (recs.empty()) break;
    for (const auto& r : recs) got.push_back(r.seq);
    after = recs.back().seq;
  }
  EXPECT_EQ(got, Range(1, 100));
  ASSERT_TRUE(s->Ack(50, &error));
  ASSERT_TRUE(s->ReadAfter(10, 5, 1 << 20, recs, &error));
  ASSERT_EQ(recs.size(), 5u);
  EXPECT_EQ(recs[0].seq, 51u) << "acknowledged records are never read again";
}

TEST_F(SpoolTest, ReadHonoursByteLimitButReturnsAtLeastOne) {
  auto s = Open();
  AppendN(*s, 5, 100);
  EXPECT_EQ(Seqs(*s, 100, 250), Range(1, 3));  // stops once 250 bytes are reached
  EXPECT_EQ(Seqs(*s, 100, 1), Range(1, 1));
}

TEST_F(SpoolTest, AppendOutOfOrderIsRefused) {
  auto s = Open();
  std::string error;
  EXPECT_FALSE(s->Append(5, "x", &error));
  EXPECT_NE(error.find("out of order"), std::string::npos);
  EXPECT_TRUE(s->Append(1, "x", &error));
}

// One AppendBatch (what the capture thread does per ring-buffer poll) gives the same files as
// appending one by one: records split across segment boundaries, the bound applied, every record
// read back (CRC checked) after a reopen; a record too large stops the batch there.
TEST_F(SpoolTest, AppendBatchSpansSegmentsAndStopsAtARecordTooLarge) {
  opts_.max_bytes = 1 << 20;
  opts_.segment_bytes = 2048;
  auto s = Open();
  std::vector<std::string> payloads;
  for (uint64_t seq = 1; seq <= 100; ++seq) payloads.push_back(Payload(seq, 40 + seq % 50));
  std::vector<std::string_view> views(payloads.begin(), payloads.end());
  std::string error;
  ASSERT_EQ(s->AppendBatch(1, views, &error), 100u) << error;
  EXPECT_EQ(s->NextSeq(), 101u);
  EXPECT_GT(Segments().size(), 3u) << "the batch went into several segments";
  for (const auto& f : Segments()) EXPECT_LE(fs::file_size(f), opts_.segment_bytes);
  EXPECT_EQ(s->AppendBatch(7, views, &error), 0u);
  EXPECT_NE(error.find("out of order"), std::string::npos);

  std::string big(4000, 'x');
  std::vector<std::string_view> mixed = {payloads[0], payloads[1], big, payloads[2]};
  payloads[0] = Payload(101);
  payloads[1] = Payload(102);
  mixed[0] = payloads[0];
  mixed[1] = payloads[1];
  error.clear();
  EXPECT_EQ(s->AppendBatch(101, mixed, &error), 2u);
  EXPECT_NE(error.find("exceeds"), std::string::npos);
  EXPECT_EQ(s->NextSeq(), 103u) << "the refused record and those after it took no seq";
  s.reset();
  s = Open();
  EXPECT_EQ(Seqs(*s), Range(1, 102));
  EXPECT_EQ(s->stats().truncated_bytes, 0u);
}

TEST_F(SpoolTest, AppendBatchKeepsTheBound) {
  opts_.max_bytes = 8192;
  opts_.segment_bytes = 2048;
  auto s = Open();
  std::vector<std::string> payloads;
  for (uint64_t seq = 1; seq <= 200; ++seq) payloads.push_back(Payload(seq, 100));
  std::vector<std::string_view> views(payloads.begin(), payloads.end());
  std::string error;
  ASSERT_EQ(s->AppendBatch(1, views, &error), 200u) << error;
  SpoolStats st = s->stats();
  EXPECT_LE(st.bytes, opts_.max_bytes);
  EXPECT_EQ(st.dropped + st.pending, 200u);
  EXPECT_EQ(Seqs(*s), Range(st.dropped + 1, 200));
}

TEST_F(SpoolTest, SeqAndPendingSurviveReopen) {
  {
    auto s = Open();
    AppendN(*s, 10);
    std::string error;
    ASSERT_TRUE(s->Ack(3, &error));
  }
  auto s = Open();
  EXPECT_EQ(s->NextSeq(), 11u);
  EXPECT_EQ(s->stats().recovered, 7u);
  EXPECT_EQ(Seqs(*s), Range(4, 10));
  AppendN(*s, 2);
  EXPECT_EQ(Seqs(*s), Range(4, 12));
}

TEST_F(SpoolTest, SeqContinuesAfterEverythingWasAcked) {
  {
    auto s = Open();
    AppendN(*s, 5);
    std::string error;
    ASSERT_TRUE(s->Ack(5, &error));
  }
  auto s = Open();
  EXPECT_EQ(s->NextSeq(), 6u) << "a reused seq would be deduplicated away by the server";
  EXPECT_TRUE(Seqs(*s).empty());
}

TEST_F(SpoolTest, BoundDropsOldestSegmentsAndCountsThem) {
  opts_.max_bytes = 8192;
  opts_.segment_bytes = 2048;
  auto s = Open();
  AppendN(*s, 200, 100);  // 200 * 116 bytes = 23 KiB through an 8 KiB spool
  SpoolStats st = s->stats();
  EXPECT_LE(st.bytes, opts_.max_bytes);
  EXPECT_GT(st.dropped, 0u);
  EXPECT_EQ(st.dropped + st.pending, 200u) << "every event is either waiting or counted as dropped";
  std::vector<uint64_t> seqs = Seqs(*s);
  ASSERT_FALSE(seqs.empty());
  EXPECT_EQ(seqs, Range(st.dropped + 1, 200)) << "the newest events are kept, in order";
  uint64_t total = 0;
  for (const auto& f : Segments()) total += fs::file_size(f);
  EXPECT_EQ(total, st.bytes);
}

// A filesystem smaller than max_bytes (a 64 KiB tmpfs; needs root, as in CI): a full disk drops the
// oldest segments like the bound does, never the new event, keeps room for the acked file, and the
// bound comes back once everything is acknowledged.
TEST_F(SpoolTest, FullDiskDropsTheOldestAndKeepsTheNewest) {
  opts_.max_bytes = 1 << 20;
  opts_.segment_bytes = 8192;
  ASSERT_EQ(mkdir(opts_.dir.c_str(), 0700), 0);
  if (mount("boing-spool-test", opts_.dir.c_str(), "tmpfs", 0, "size=64k,mode=0700") != 0) {
    if (std::getenv("CI")) FAIL() << "cannot mount a tmpfs: " << std::strerror(errno);
    GTEST_SKIP() << "cannot mount a tmpfs (needs root): " << std::strerror(errno);
  }
  struct Unmount {
    std::string dir;
    ~Unmount() { umount2(dir.c_str(), MNT_DETACH); }
  } unmount{opts_.dir};
  auto s = Open();
  AppendN(*s, 2000, 200);  // 2000 * 216 bytes = 422 KiB through a 64 KiB filesystem
  SpoolStats st = s->stats();
  EXPECT_GE(st.disk_full, 1u);
  EXPECT_GT(st.dropped, 0u);
  EXPECT_LT(st.cap_bytes, 64u << 10);
  EXPECT_LE(st.bytes, st.cap_bytes);
  EXPECT_EQ(st.dropped + st.pending, 2000u)
      << "every event is either waiting or counted as dropped";
  EXPECT_EQ(Seqs(*s), Range(st.dropped + 1, 2000)) << "the newest events are kept, in order";
  std::string error;
  ASSERT_TRUE(s->Ack(2000, &error)) << "the acked file must stay writable: " << error;
  EXPECT_EQ(s->stats().cap_bytes, opts_.max_bytes) << "the bound is back after the backlog";
  AppendN(*s, 10, 200);
  EXPECT_EQ(Seqs(*s), Range(2001, 2010));
}

TEST_F(SpoolTest, DropsCountOnlyUnackedRecords) {
  opts_.max_bytes = 8192;
  opts_.segment_bytes = 2048;
  auto s = Open();
  AppendN(*s, 30, 100);
  std::string error;
  ASSERT_TRUE(s->Ack(30, &error));
  AppendN(*s, 200, 100);
  SpoolStats st = s->stats();
  EXPECT_EQ(st.dropped + st.pending, 200u);
}

TEST_F(SpoolTest, AckDeletesFullyAcknowledgedSegments) {
  opts_.max_bytes = 1 << 20;
  opts_.segment_bytes = 4096;
  auto s = Open();
  AppendN(*s, 300, 100);
  size_t before = Segments().size();
  EXPECT_GT(before, 5u);
  std::string error;
  ASSERT_TRUE(s->Ack(300, &error));
  EXPECT_EQ(Segments().size(), 1u) << "only the open tail remains";
  EXPECT_EQ(s->stats().pending, 0u);
}

TEST_F(SpoolTest, TornTailFromACrashIsCutAndTheRestKept) {
  {
    auto s = Open();
    AppendN(*s, 5);
  }
  std::vector<std::string> segs = Segments();
  ASSERT_EQ(segs.size(), 1u);
  uint64_t good_size = fs::file_size(segs[0]);
  {
    // Half a record: a header announcing 100 bytes followed by 10.
    int fd = open(segs[0].c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    unsigned char header[16] = {100, 0, 0, 0, 1, 2, 3, 4, 6, 0, 0, 0, 0, 0, 0, 0};
    ASSERT_EQ(write(fd, header, 16), 16);
    ASSERT_EQ(write(fd, "0123456789", 10), 10);
    close(fd);
  }
  auto s = Open();
  SpoolStats st = s->stats();
  EXPECT_EQ(st.recovered, 5u);
  EXPECT_EQ(st.truncated_bytes, 26u);
  EXPECT_EQ(fs::file_size(segs[0]), good_size);
  EXPECT_EQ(s->NextSeq(), 6u);
  AppendN(*s, 1);
  EXPECT_EQ(Seqs(*s), Range(1, 6));
}

TEST_F(SpoolTest, CorruptRecordEndsTheSegmentThere) {
  {
    auto s = Open();
    AppendN(*s, 5, 50);
  }
  std::vector<std::string> segs = Segments();
  ASSERT_EQ(segs.size(), 1u);
  {
    // Flip one payload byte of the third record (records are 66 bytes).
    int fd = open(segs[0].c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c;
    ASSERT_EQ(pread(fd, &c, 1, 2 * 66 + 20), 1);
    c ^= 0x20;
    ASSERT_EQ(pwrite(fd, &c, 1, 2 * 66 + 20), 1);
    close(fd);
  }
  auto s = Open();
  EXPECT_EQ(s->stats().truncated_bytes, 3u * 66);
  EXPECT_EQ(Seqs(*s), Range(1, 2));
  EXPECT_EQ(s->NextSeq(), 3u);
}

// fuzz_spool finding: an intact record whose seq does not go up (here record 2 copied over
// record 3) was detected but the cut fell after it, so it stayed in the segment and was handed
// out twice.
TEST_F(SpoolTest, RecordOutOfSeqOrderIsCutWithTheRest) {
  {
    auto s = Open();
    AppendN(*s, 3, 50);
  }
  std::vector<std::string> segs = Segments();
  ASSERT_EQ(segs.size(), 1u);
  {
    int fd = open(segs[0].c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char rec[66];
    ASSERT_EQ(pread(fd, rec, sizeof rec, 66), 66);
    ASSERT_EQ(pwrite(fd, rec, sizeof rec, 2 * 66), 66);
    close(fd);
  }
  auto s = Open();
  EXPECT_EQ(s->stats().truncated_bytes, 66u);
  EXPECT_EQ(s->stats().pending, 2u);
  EXPECT_EQ(Seqs(*s), Range(1, 2));
  EXPECT_EQ(s->NextSeq(), 3u);
}

TEST_F(SpoolTest, RefusesRecordsLargerThanASegmentAndTooSmallBounds) {
  opts_.max_bytes = 8192;
  opts_.segment_bytes = 2048;
  auto s = Open();
  std::string error;
  EXPECT_FALSE(s->Append(1, std::string(4000, 'x'), &error));
  EXPECT_NE(error.find("exceeds"), std::string::npos);
  EXPECT_EQ(s->NextSeq(), 1u);
  opts_.segment_bytes = 8192;
  EXPECT_EQ(Spool::Open(opts_, &error), nullptr);
  EXPECT_NE(error.find("two segments"), std::string::npos);
}

TEST_F(SpoolTest, FilesArePrivate) {
  auto s = Open();
  AppendN(*s, 1);
  struct stat st {};
  ASSERT_EQ(stat(opts_.dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(stat(Segments()[0].c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// The thread that syncs (the uplink's) in the tests below; syncs anywhere else are counted.
thread_local bool tl_syncer = false;

std::string FdPath(int fd) {
  char buf[4096];
  ssize_t n = readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

TEST_F(SpoolTest, AppendNeverWaitsForASyncInProgress) {
  std::mutex m;
  std::condition_variable cv;
  bool in_sync = false, release = false;
  std::atomic<int> syncs_elsewhere{0};
  opts_.segment_bytes = 4096;  // the appends below close several segments
  opts_.max_bytes = 1 << 20;
  opts_.sync_fn = [&](int fd) {
    if (!tl_syncer) {
      ++syncs_elsewhere;
      return fdatasync(fd);
    }
    std::unique_lock<std::mutex> lock(m);
    in_sync = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    return fdatasync(fd);
  };
  auto s = Open();
  AppendN(*s, 10);
  std::vector<SpoolRecord> first;
  std::string read_error;
  bool read_ok = false;
  std::thread reader([&] {
    tl_syncer = true;
    read_ok = s->ReadAfter(0, 1000, 1 << 30, first, &read_error);
  });
  {
    std::unique_lock<std::mutex> lock(m);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return in_sync; }));
  }
  // The reader is stuck inside fdatasync now: appends (with segment rollovers), NextSeq and
  // stats must all finish anyway.
  auto appender = std::async(std::launch::async, [&] {
    AppendN(*s, 200, 40);
    return s->stats().pending;
  });
  bool finished = appender.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  {
    std::lock_guard<std::mutex> lock(m);
    release = true;
  }
  cv.notify_all();
  reader.join();
  ASSERT_TRUE(finished) << "Append waited for a sync on another thread";
  EXPECT_EQ(appender.get(), 210u);
  EXPECT_GE(Segments().size(), 3u);
  EXPECT_EQ(syncs_elsewhere.load(), 0) << "the appending thread synced (segment rollover?)";
  // The read hands out only what its sync covered: the records appended before it began.
  ASSERT_TRUE(read_ok) << read_error;
  std::vector<uint64_t> got;
  for (const SpoolRecord& r : first) got.push_back(r.seq);
  EXPECT_EQ(got, Range(1, 10));
  tl_syncer = true;
  EXPECT_EQ(Seqs(*s), Range(1, 210));
  tl_syncer = false;
}

TEST_F(SpoolTest, ClosedSegmentsAreSyncedBySyncClosedNotByAppend) {
  std::mutex m;
  std::vector<std::string> synced;
  opts_.segment_bytes = 4096;
  opts_.max_bytes = 1 << 20;
  opts_.sync_fn = [&](int fd) {
    std::lock_guard<std::mutex> lock(m);
    synced.push_back(FdPath(fd));
    return fdatasync(fd);
  };
  auto s = Open();
  AppendN(*s, 200);  // ~73 records of 56 bytes per segment: 3 segments
  std::vector<std::string> segs = Segments();
  ASSERT_EQ(segs.size(), 3u);
  EXPECT_TRUE(synced.empty()) << synced[0];
  std::string error;
  ASSERT_TRUE(s->SyncClosed(&error)) << error;
  std::string dir = fs::canonical(opts_.dir).string();
  std::vector<std::string> want = {fs::canonical(segs[0]).string(), fs::canonical(segs[1]).string(),
                                   dir};
  EXPECT_EQ(synced, want) << "closed segments, then the directory; not the tail";
  synced.clear();
  ASSERT_TRUE(s->SyncClosed(&error)) << error;
  EXPECT_TRUE(synced.empty());
  ASSERT_TRUE(s->Sync(&error)) << error;
  EXPECT_EQ(synced, std::vector<std::string>{fs::canonical(segs[2]).string()});
  synced.clear();
  EXPECT_EQ(Seqs(*s), Range(1, 200));
  EXPECT_TRUE(synced.empty()) << "everything was synced already";
}

TEST_F(SpoolTest, NeverPolicySyncsNothing) {
  int syncs = 0;
  opts_.segment_bytes = 4096;
  opts_.max_bytes = 1 << 20;
  opts_.fsync = FsyncPolicy::kNever;
  opts_.sync_fn = [&](int) { return ++syncs, 0; };
  {
    auto s = Open();
    AppendN(*s, 200);
    EXPECT_EQ(Seqs(*s), Range(1, 200));
    std::string error;
    ASSERT_TRUE(s->Ack(200, &error)) << error;
  }
  EXPECT_EQ(syncs, 0);
}

}  // namespace
}  // namespace boing::agent
