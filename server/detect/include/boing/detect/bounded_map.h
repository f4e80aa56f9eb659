// A hash map with a fixed capacity and second-chance (CLOCK) eviction, an approximation of
// least-recently-used. Every per-actor and per-endpoint table of the pipeline is one of these, so
// memory stays bounded whatever the traffic (a flood of rotating client IPs evicts old actors
// instead of growing the process); evictions are counted so they can be reported.
//
// Layout, chosen for the pipeline's hot path (one or two lookups per event in tables of 100,000
// actors): entries live in chunks of 256 that only grow up to the capacity (their addresses never
// change, and the table of chunks stays small enough to be in cache, where a deque of large
// entries needs one pointer per two entries) and an open-addressing index (linear probing, at most
// half full) maps a key to its entry. A hit sets the entry's reference bit: one byte written, where
// a linked LRU list moved three nodes. When the table is full, a clock hand sweeps the entries,
// clearing reference bits, and reuses the first entry whose bit was already clear; an entry
// inserted and never seen again goes first, so a flood of one-off keys displaces little of the
// returning traffic.
//
// A reference returned by Get() stays valid until the entry is evicted; the entry returned by the
// latest Get() is never the one evicted by the next, so two entries can be held at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

namespace boing::detect {

template <class K, class V>
class BoundedMap {
 public:
  explicit BoundedMap(size_t capacity) : capacity_(capacity ? capacity : 1) {}

  // The value for `key`, created (default-constructed) when absent; marks it recently used.
  V& Get(const K& key, bool* created = nullptr) {
    const uint64_t h = Mix(key);
    size_t slot = 0;
    if (uint32_t n = Lookup(key, h, &slot); n != kEmpty) {
      refs_[n] = 1;
      last_ = n;
      if (created) *created = false;
      return nodes_[n].second;
    }
    uint32_t n;
    if (nodes_.size() < capacity_) {
      if ((nodes_.size() + 1) * 2 > slots_.size()) {
        Grow();
        Lookup(key, h, &slot);  // the free slot for `key` in the new index
      }
      n = static_cast<uint32_t>(nodes_.size());
      nodes_.emplace_back(key, V{});
      refs_.push_back(0);
    } else {
      n = Victim();
      Erase(nodes_[n].first);
      ++evictions_;
      nodes_[n].first = key;
      nodes_[n].second = V{};
      refs_[n] = 0;
      Lookup(key, h, &slot);  // erasing may have shifted entries into the probe sequence
    }
    slots_[slot] = Slot{static_cast<uint32_t>(h), n};
    last_ = n;
    if (created) *created = true;
    return nodes_[n].second;
  }

  // The value for `key` or nullptr, without marking it used.
  const V* Peek(const K& key) const {
    size_t slot = 0;
    uint32_t n = Lookup(key, Mix(key), &slot);
    return n == kEmpty ? nullptr : &nodes_[n].second;
  }

  V* Find(const K& key) {
    size_t slot = 0;
    uint32_t n = Lookup(key, Mix(key), &slot);
    return n == kEmpty ? nullptr : &nodes_[n].second;
  }

  // Starts loading the index slot where `key` would be, so that a Get() a little later finds it
  // in cache (the tables are far larger than the cache; the lookups of one event are independent).
  void Prefetch(const K& key) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[Mix(key) & (slots_.size() - 1)]);
  }

  // Once the index slot is in cache (some time after Prefetch()): starts loading the entry of
  // `key` and its reference bit, when `key` sits in its home slot (nearly always, half full).
  void PrefetchEntry(const K& key) const {
    if (slots_.empty()) return;
    const uint64_t h = Mix(key);
    const Slot& s = slots_[h & (slots_.size() - 1)];
    if (s.node == kEmpty || s.tag != static_cast<uint32_t>(h)) return;
    // Every cache line of the entry (actor states span three or four).
    const char* entry = reinterpret_cast<const char*>(&nodes_[s.node]);
    for (size_t off = 0; off < sizeof(nodes_[s.node]); off += 64) __builtin_prefetch(entry + off);
    __builtin_prefetch(&refs_[s.node]);
  }

  // Every entry, in no particular order.
  template <class F>
  void ForEach(F f) const {
    for (size_t n = 0; n < nodes_.size(); ++n) f(nodes_[n].first, nodes_[n].second);
  }

  size_t size() const { return nodes_.size(); }
  size_t capacity() const { return capacity_; }
  uint64_t evictions() const { return evictions_; }

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;

  // Entries by number, in chunks allocated as the table grows.
  class Nodes {
   public:
    std::pair<K, V>& operator[](size_t n) { return chunks_[n >> kShift][n & kMask]; }
    const std::pair<K, V>& operator[](size_t n) const { return chunks_[n >> kShift][n & kMask]; }
    size_t size() const { return size_; }
    void emplace_back(const K& key, V&& value) {
      if ((size_ & kMask) == 0) chunks_.push_back(std::make_unique<std::pair<K, V>[]>(kMask + 1));
      (*this)[size_] = {key, std::move(value)};
      ++size_;
    }

   private:
    static constexpr size_t kShift = 8, kMask = (size_t{1} << kShift) - 1;
    std::vector<std::unique_ptr<std::pair<K, V>[]>> chunks_;
    size_t size_ = 0;
  };
  struct Slot {
    uint32_t tag = 0;  // low 32 bits of the key's hash: the home slot and a cheap pre-check
    uint32_t node = kEmpty;
  };

  static uint64_t Mix(const K& key) {
    uint64_t x = static_cast<uint64_t>(std::hash<K>{}(key));
    x ^= x >> 33;  // MurmurHash3's finaliser: std::hash of an integer is the integer itself
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
  }

  // The entry of `key`, or kEmpty with *slot = the free slot where it would go.
  uint32_t Lookup(const K& key, uint64_t h, size_t* slot) const {
    if (slots_.empty()) return kEmpty;
    const size_t mask = slots_.size() - 1;
    const uint32_t tag = static_cast<uint32_t>(h);
    for (size_t i = tag & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.node == kEmpty) {
        *slot = i;
        return kEmpty;
      }
      if (s.tag == tag && nodes_[s.node].first == key) {
        *slot = i;
        return s.node;
      }
    }
  }

  void Grow() {
    size_t n = slots_.empty() ? 16 : slots_.size() * 2;
    slots_.assign(n, Slot{});
    const size_t mask = n - 1;
    for (uint32_t k = 0; k < nodes_.size(); ++k) {
      const uint32_t tag = static_cast<uint32_t>(Mix(nodes_[k].first));
      size_t i = tag & mask;
      while (slots_[i].node != kEmpty) i = (i + 1) & mask;
      slots_[i] = Slot{tag, k};
    }
  }

  // Removes `key` from the index (backward-shift deletion keeps probe sequences unbroken).
  void Erase(const K& key) {
    size_t i = 0;
    if (Lookup(key, Mix(key), &i) == kEmpty) return;
    const size_t mask = slots_.size() - 1;
    for (size_t j = (i + 1) & mask; slots_[j].node != kEmpty; j = (j + 1) & mask) {
      const size_t home = slots_[j].tag & mask;
      // Slot j may fill the hole at i unless its home lies cyclically in (i, j].
      const bool stays = i < j ? (home > i && home <= j) : (home > i || home <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = Slot{};
  }

  uint32_t Victim() {
    for (;;) {
      if (hand_ >= nodes_.size()) hand_ = 0;
      const uint32_t n = hand_++;
      if (n == last_ && nodes_.size() > 1) continue;
      if (refs_[n]) {
        refs_[n] = 0;
        continue;
      }
      return n;
    }
  }

  size_t capacity_;
  uint64_t evictions_ = 0;
  Nodes nodes_;                // never shrinks; evicted entries are reused in place
  std::vector<uint8_t> refs_;  // reference bits, one per entry
  std::vector<Slot> slots_;    // power of two, at most half full
  uint32_t hand_ = 0;
  uint32_t last_ = kEmpty;  // the entry the latest Get() returned: never the next victim
};

}  // namespace boing::detect
