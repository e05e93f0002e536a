#include "engine/cache/leveldb_cache_storage.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <vector>

#include <leveldb/db.h>
#include <leveldb/write_batch.h>

#include "absl/strings/numbers.h"
#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"

namespace kiln::engine {
namespace {

constexpr char kFormatKey[] = "V";
constexpr char kFormatVersion[] = "1";

std::string Join(std::initializer_list<std::string_view> parts) {
  std::string out;
  bool first = true;
  for (std::string_view p : parts) {
    if (!first) out.push_back('\0');
    out.append(p);
    first = false;
  }
  return out;
}

std::string NodeKey(std::string_view key) { return Join({"N", key}); }
std::string ResultPrefix(std::string_view key) { return Join({"R", key, ""}); }
std::string ByResultPrefix(std::string_view id) { return Join({"B", id, ""}); }
std::string OutLinksPrefix(std::string_view from) { return Join({"L", from, ""}); }
std::string BacklinkPrefix(std::string_view to) { return Join({"K", to, ""}); }

// The link fields in a fixed order, shared by link and backlink keys.
std::string LinkFields(const CacheLink& l) {
  return Join({std::to_string(l.input), std::to_string(l.output), l.op_digest, l.selector});
}

std::string LinkPrefix(std::string_view from, const CacheLink& l) {
  return Join({"L", from, LinkFields(l), ""});
}

std::string BacklinkKey(std::string_view to, std::string_view from, const CacheLink& l) {
  return Join({"K", to, from, LinkFields(l)});
}

std::vector<std::string_view> Split(std::string_view s) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t nul = s.find('\0', start);
    if (nul == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, nul - start));
    start = nul + 1;
  }
}

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

std::string EncodeTime(std::chrono::system_clock::time_point t) {
  int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  uint64_t u = static_cast<uint64_t>(ns);
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(u & 0xff);
    u >>= 8;
  }
  return out;
}

std::optional<std::chrono::system_clock::time_point> DecodeTime(std::string_view v) {
  if (v.size() != 8) return std::nullopt;
  uint64_t u = 0;
  for (char c : v) u = (u << 8) | static_cast<uint8_t>(c);
  auto ns = std::chrono::nanoseconds(static_cast<int64_t>(u));
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(ns));
}

std::string_view View(const leveldb::Slice& s) { return std::string_view(s.data(), s.size()); }

}  // namespace

namespace {

absl::Status FromLevelDb(const leveldb::Status& st, std::string_view what) {
  if (st.ok()) return absl::OkStatus();
  std::string msg = StrCat(what, ": ", st.ToString());
  if (st.IsNotFound()) return absl::NotFoundError(msg);
  if (st.IsCorruption()) return absl::DataLossError(msg);
  if (st.IsIOError()) {
    // leveldb reports a held LOCK file as an IO error.
    if (st.ToString().find("lock") != std::string::npos) return absl::UnavailableError(msg);
    return absl::InternalError(msg);
  }
  if (st.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  return absl::InternalError(msg);
}

// Calls fn(suffix after prefix, value) for each record under `prefix`; fn returns false to stop.
template <typename Fn>
absl::Status Scan(leveldb::DB* db, const std::string& prefix, Fn fn) {
  std::unique_ptr<leveldb::Iterator> it(db->NewIterator(leveldb::ReadOptions()));
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    std::string_view k = View(it->key());
    if (!k.starts_with(prefix)) break;
    if (!fn(k.substr(prefix.size()), View(it->value()))) break;
  }
  return FromLevelDb(it->status(), "scan cache database");
}

}  // namespace

LevelDbCacheStorage::LevelDbCacheStorage(std::string path, std::unique_ptr<leveldb::DB> db,
                                         Options options)
    : path_(std::move(path)), db_(std::move(db)), options_(options) {}

LevelDbCacheStorage::~LevelDbCacheStorage() = default;

absl::StatusOr<std::unique_ptr<LevelDbCacheStorage>> LevelDbCacheStorage::Open(
    const std::string& path, Options options) {
  KILN_RETURN_IF_ERROR(MakeDirs(path, 0700));
  leveldb::Options opts;
  opts.create_if_missing = true;
  // Append to the existing MANIFEST and log at open instead of writing (and syncing) new
  // ones: every kilnctl run opens this database, and a fresh manifest costs three fsyncs.
  opts.reuse_logs = true;
  opts.paranoid_checks = true;
  leveldb::DB* raw = nullptr;
  KILN_RETURN_IF_ERROR(FromLevelDb(leveldb::DB::Open(opts, path, &raw),
                                   StrCat("open cache database ", Quote(path))));
  std::unique_ptr<leveldb::DB> db(raw);
  std::string version;
  leveldb::Status st = db->Get(leveldb::ReadOptions(), kFormatKey, &version);
  if (st.IsNotFound()) {
    leveldb::WriteOptions wo;
    wo.sync = options.sync;
    KILN_RETURN_IF_ERROR(FromLevelDb(db->Put(wo, kFormatKey, kFormatVersion),
                                     StrCat("initialize cache database ", Quote(path))));
  } else if (!st.ok()) {
    return FromLevelDb(st, StrCat("read cache database ", Quote(path)));
  } else if (version != kFormatVersion) {
    return absl::FailedPreconditionError(StrCat("open cache database ", Quote(path),
                                                ": unsupported format version ", Quote(version),
                                                " (this Kiln reads ", kFormatVersion, ")"));
  }
  return std::unique_ptr<LevelDbCacheStorage>(
      new LevelDbCacheStorage(path, std::move(db), options));
}

absl::StatusOr<bool> LevelDbCacheStorage::Exists(const std::string& key) {
  if (HasNul(key)) return false;
  std::string ignored;
  leveldb::Status st = db_->Get(leveldb::ReadOptions(), NodeKey(key), &ignored);
  if (st.IsNotFound()) return false;
  KILN_RETURN_IF_ERROR(FromLevelDb(st, "read cache database"));
  return true;
}

absl::Status LevelDbCacheStorage::Walk(const KeyFn& fn) {
  std::vector<std::string> keys;
  KILN_RETURN_IF_ERROR(Scan(db_.get(), Join({"N", ""}), [&](std::string_view key, auto) {
    keys.emplace_back(key);
    return true;
  }));
  for (const auto& k : keys) KILN_RETURN_IF_ERROR(fn(k));
  return absl::OkStatus();
}

absl::Status LevelDbCacheStorage::WalkResults(const std::string& key, const ResultFn& fn) {
  if (HasNul(key)) return absl::OkStatus();
  std::vector<CacheResultRecord> records;
  absl::Status bad;
  KILN_RETURN_IF_ERROR(
      Scan(db_.get(), ResultPrefix(key), [&](std::string_view id, std::string_view value) {
        std::optional<std::chrono::system_clock::time_point> created = DecodeTime(value);
        if (!created) {
          bad = absl::DataLossError(StrCat("read cache database ", Quote(path_), ": result ",
                                           Quote(id), " of key ", Quote(key),
                                           " has a malformed creation time"));
          return false;
        }
        records.push_back({std::string(id), *created});
        return true;
      }));
  KILN_RETURN_IF_ERROR(bad);
  std::stable_sort(records.begin(), records.end(),
                   [](const auto& a, const auto& b) { return a.created > b.created; });
  for (const auto& r : records) KILN_RETURN_IF_ERROR(fn(r));
  return absl::OkStatus();
}

absl::Status LevelDbCacheStorage::WalkLinks(const std::string& from, const CacheLink& link,
                                            const KeyFn& fn) {
  if (HasNul(from) || HasNul(link.op_digest) || HasNul(link.selector)) return absl::OkStatus();
  std::vector<std::string> targets;
  KILN_RETURN_IF_ERROR(Scan(db_.get(), LinkPrefix(from, link), [&](std::string_view to, auto) {
    targets.emplace_back(to);
    return true;
  }));
  for (const auto& t : targets) KILN_RETURN_IF_ERROR(fn(t));
  return absl::OkStatus();
}

absl::Status LevelDbCacheStorage::WalkBacklinks(const std::string& to, const BacklinkFn& fn) {
  if (HasNul(to)) return absl::OkStatus();
  std::vector<std::pair<std::string, CacheLink>> back;
  absl::Status bad;
  KILN_RETURN_IF_ERROR(Scan(db_.get(), BacklinkPrefix(to), [&](std::string_view rest, auto) {
    std::vector<std::string_view> p = Split(rest);  // from, input, output, op, selector
    CacheLink l;
    if (p.size() != 5 || !absl::SimpleAtoi(ToAbsl(p[1]), &l.input) ||
        !absl::SimpleAtoi(ToAbsl(p[2]), &l.output)) {
      bad = absl::DataLossError(
          StrCat("read cache database ", Quote(path_), ": malformed backlink of key ", Quote(to)));
      return false;
    }
    l.op_digest = std::string(p[3]);
    l.selector = std::string(p[4]);
    back.push_back({std::string(p[0]), std::move(l)});
    return true;
  }));
  KILN_RETURN_IF_ERROR(bad);
  for (const auto& [from, link] : back) KILN_RETURN_IF_ERROR(fn(from, link));
  return absl::OkStatus();
}

absl::Status LevelDbCacheStorage::WalkKeysByResult(const std::string& result_id, const KeyFn& fn) {
  if (HasNul(result_id)) return absl::OkStatus();
  std::vector<std::string> keys;
  KILN_RETURN_IF_ERROR(Scan(db_.get(), ByResultPrefix(result_id), [&](std::string_view k, auto) {
    keys.emplace_back(k);
    return true;
  }));
  for (const auto& k : keys) KILN_RETURN_IF_ERROR(fn(k));
  return absl::OkStatus();
}

absl::Status LevelDbCacheStorage::Commit(const CacheUpdate& update) {
  KILN_RETURN_IF_ERROR(ValidateCacheUpdate(update));
  if (update.empty()) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(write_mu_);
  leveldb::WriteBatch batch;
  for (const auto& l : update.links) {
    batch.Put(LinkPrefix(l.from, l.link) + l.to, "");
    batch.Put(BacklinkKey(l.to, l.from, l.link), "");
    batch.Put(NodeKey(l.from), "");
    batch.Put(NodeKey(l.to), "");
  }
  std::set<std::string> added;
  for (const auto& r : update.results) {
    std::string rk = ResultPrefix(r.key) + r.record.id;
    // An existing record keeps its creation time (adding it again is a no-op).
    if (!added.insert(rk).second) continue;
    std::string existing;
    leveldb::Status st = db_->Get(leveldb::ReadOptions(), rk, &existing);
    if (st.ok()) continue;
    if (!st.IsNotFound()) return FromLevelDb(st, "read cache database");
    batch.Put(rk, EncodeTime(r.record.created));
    batch.Put(ByResultPrefix(r.record.id) + r.key, "");
    batch.Put(NodeKey(r.key), "");
  }
  leveldb::WriteOptions wo;
  wo.sync = options_.sync;
  return FromLevelDb(db_->Write(wo, &batch), StrCat("commit to cache database ", Quote(path_)));
}

absl::Status LevelDbCacheStorage::Release(const std::string& result_id) {
  if (HasNul(result_id)) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(write_mu_);
  // The batch is not readable, so `deleted` tracks what it removes and the scans skip those.
  leveldb::WriteBatch batch;
  std::set<std::string> deleted;
  auto del = [&](std::string k) {
    batch.Delete(k);
    deleted.insert(std::move(k));
  };
  auto any_live = [&](const std::string& prefix) -> absl::StatusOr<bool> {
    bool found = false;
    KILN_RETURN_IF_ERROR(Scan(db_.get(), prefix, [&](std::string_view suffix, auto) {
      found = !deleted.contains(prefix + std::string(suffix));
      return !found;
    }));
    return found;
  };

  std::vector<std::string> keys;
  KILN_RETURN_IF_ERROR(Scan(db_.get(), ByResultPrefix(result_id), [&](std::string_view k, auto) {
    keys.emplace_back(k);
    return true;
  }));
  if (keys.empty()) return absl::OkStatus();
  for (const auto& k : keys) {
    del(ResultPrefix(k) + result_id);
    del(ByResultPrefix(result_id) + k);
  }
  // Prune keys left with no result and no outgoing link, then their parents.
  std::vector<std::string> work = keys;
  while (!work.empty()) {
    std::string key = std::move(work.back());
    work.pop_back();
    const std::string node = NodeKey(key);
    if (deleted.contains(node)) continue;
    KILN_ASSIGN_OR_RETURN(bool has_results, any_live(ResultPrefix(key)));
    if (has_results) continue;
    KILN_ASSIGN_OR_RETURN(bool has_links, any_live(OutLinksPrefix(key)));
    if (has_links) continue;
    del(node);
    std::vector<std::pair<std::string, CacheLink>> back;
    KILN_RETURN_IF_ERROR(WalkBacklinks(key, [&](const std::string& from, const CacheLink& l) {
      back.push_back({from, l});
      return absl::OkStatus();
    }));
    for (const auto& [from, l] : back) {
      const std::string bk = BacklinkKey(key, from, l);
      if (deleted.contains(bk)) continue;
      del(bk);
      del(LinkPrefix(from, l) + key);
      work.push_back(from);
    }
  }
  leveldb::WriteOptions wo;
  wo.sync = options_.sync;
  return FromLevelDb(db_->Write(wo, &batch),
                     StrCat("release ", Quote(result_id), " in cache database ", Quote(path_)));
}

}  // namespace kiln::engine
