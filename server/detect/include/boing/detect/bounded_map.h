// A hash map with a fixed capacity and least-recently-used eviction. Every per-actor and
// per-endpoint table of the pipeline is one of these, so memory stays bounded whatever the traffic
// (a flood of rotating client IPs evicts old actors instead of growing the process); evictions are
// counted so they can be reported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <unordered_map>
#include <utility>

namespace boing::detect {

template <class K, class V>
class BoundedMap {
 public:
  explicit BoundedMap(size_t capacity) : capacity_(capacity ? capacity : 1) {}

  // The value for `key`, created (default-constructed) when absent; marks it most recently used.
  V& Get(const K& key, bool* created = nullptr) {
    auto it = index_.find(key);
    if (it != index_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      if (created) *created = false;
      return it->second->second;
    }
    if (index_.size() >= capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
      ++evictions_;
    }
    order_.emplace_front(key, V{});
    index_.emplace(key, order_.begin());
    if (created) *created = true;
    return order_.front().second;
  }

  V* Find(const K& key) {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &it->second->second;
  }

  template <class F>
  void ForEach(F f) const {
    for (const auto& [k, v] : order_) f(k, v);
  }

  size_t size() const { return index_.size(); }
  size_t capacity() const { return capacity_; }
  uint64_t evictions() const { return evictions_; }

 private:
  size_t capacity_;
  uint64_t evictions_ = 0;
  std::list<std::pair<K, V>> order_;  // most recently used first
  std::unordered_map<K, typename std::list<std::pair<K, V>>::iterator> index_;
};

}  // namespace boing::detect
