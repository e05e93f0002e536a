#include "registry/registry.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "base/status.h"
#include "base/strings.h"
#include "base/thread_pool.h"
#include "registry/curl_transport.h"
#include "registry/operations.h"
#include "registry/platform_match.h"
#include "registry/session.h"

namespace kiln::registry {

using internal::Endpoint;
using internal::Session;

namespace {

constexpr size_t kMaxKnownLocations = 100000;
constexpr int kMaxIndexDepth = 4;
constexpr size_t kMaxMountSources = 4;

bool IsIndexType(std::string_view t) {
  return t == oci::kMediaTypeImageIndex || t == oci::kMediaTypeDockerManifestList;
}
bool IsManifestType(std::string_view t) {
  return t == oci::kMediaTypeImageManifest || t == oci::kMediaTypeDockerManifest;
}

// "host:port" -> "host"; "[::1]:5000" -> "[::1]".
std::string HostnameOf(std::string_view host) {
  if (absl::StartsWith(ToAbsl(host), "[")) {
    return std::string(host.substr(0, std::min(host.find(']') + 1, host.size())));
  }
  return std::string(host.substr(0, std::min(host.find(':'), host.size())));
}

bool IsLoopbackName(std::string_view host) {
  std::string name = HostnameOf(host);
  return name == "localhost" || name == "127.0.0.1" || name == "[::1]";
}

std::string TagOrDigest(const ImageReference& ref) {
  if (ref.digest) return ref.digest->str();
  return ref.tag.empty() ? "latest" : ref.tag;
}

// Completion of one in-flight transfer, waited for by duplicates.
struct Flight {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  absl::Status status;
  std::string repo;

  absl::Status Wait(const CancelToken& cancel) {
    CancelRegistration reg = cancel.OnCancel([this] {
      std::lock_guard<std::mutex> lock(mu);
      cv.notify_all();
    });
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done || cancel.cancelled(); });
    return done ? absl::OkStatus() : cancel.Check();
  }
  void Finish(absl::Status s) {
    std::lock_guard<std::mutex> lock(mu);
    status = std::move(s);
    done = true;
    cv.notify_all();
  }
};

struct PushCounters {
  std::atomic<int> uploaded{0}, mounted{0}, skipped{0}, deduped{0};
  PushStats Snapshot() const {
    return {uploaded.load(), mounted.load(), skipped.load(), deduped.load()};
  }
};

// A bounded in-memory pipe between a download and an upload (Copy across registries).
class Pipe {
 public:
  explicit Pipe(size_t capacity) : capacity_(capacity) {}

  absl::Status Push(std::string_view data) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return buffered_ < capacity_ || reader_gone_; });
    if (reader_gone_) return absl::CancelledError("the upload side of the copy stopped");
    chunks_.emplace_back(data);
    buffered_ += data.size();
    cv_.notify_all();
    return absl::OkStatus();
  }
  void Close(absl::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    status_ = std::move(status);
    cv_.notify_all();
  }
  void ReaderGone() {
    std::lock_guard<std::mutex> lock(mu_);
    reader_gone_ = true;
    cv_.notify_all();
  }
  absl::StatusOr<size_t> Pop(char* buf, size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !chunks_.empty() || closed_; });
    if (chunks_.empty()) {
      if (!status_.ok()) return status_;
      return 0;
    }
    std::string& front = chunks_.front();
    size_t take = std::min(n, front.size() - front_pos_);
    std::memcpy(buf, front.data() + front_pos_, take);
    front_pos_ += take;
    buffered_ -= take;
    if (front_pos_ == front.size()) {
      chunks_.pop_front();
      front_pos_ = 0;
    }
    cv_.notify_all();
    return take;
  }

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> chunks_;
  size_t front_pos_ = 0;
  size_t buffered_ = 0;
  bool closed_ = false;
  bool reader_gone_ = false;
  absl::Status status_;
};

class PipeWriter : public BlobWriter {
 public:
  explicit PipeWriter(Pipe& pipe) : pipe_(pipe) {}
  uint64_t Offset() const override { return written_; }
  absl::Status Write(std::string_view data) override {
    KILN_RETURN_IF_ERROR(pipe_.Push(data));
    written_ += data.size();
    return absl::OkStatus();
  }
  absl::Status Truncate() override {
    if (written_ == 0) return absl::OkStatus();
    return absl::FailedPreconditionError("a copied blob cannot restart once bytes were sent on");
  }
  absl::Status ReadBack(const std::function<absl::Status(std::string_view)>&) override {
    return written_ == 0 ? absl::OkStatus()
                         : absl::FailedPreconditionError("a copied blob cannot be read back");
  }
  absl::Status Commit(const oci::Descriptor&) override { return absl::OkStatus(); }

 private:
  Pipe& pipe_;
  uint64_t written_ = 0;
};

}  // namespace

struct Registry::Impl {
  RegistryOptions options;
  std::shared_ptr<CredentialSource> credentials;
  std::shared_ptr<HttpTransport> transport;
  Clock& clock;
  internal::Env env;
  ThreadPool pool;

  std::mutex mu;
  std::map<std::string, std::unique_ptr<Endpoint>> endpoints;   // by origin
  std::map<std::string, std::shared_ptr<Flight>> push_flights;  // by "host\ndigest"
  std::map<std::string, std::shared_ptr<Flight>> pull_flights;
  std::map<std::string, std::vector<std::string>> locations;  // "host\ndigest" -> repositories

  Impl(RegistryOptions o, std::shared_ptr<CredentialSource> c, std::shared_ptr<HttpTransport> t,
       Clock& clk)
      : options(std::move(o)),
        credentials(std::move(c)),
        transport(t ? std::move(t) : std::make_shared<CurlTransport>()),
        clock(clk),
        env{*transport, clock, options.retry},
        pool(static_cast<size_t>(std::max(1, options.io_threads))) {}

  HostConfig ConfigFor(const std::string& host) const {
    auto it = options.hosts.find(host);
    return it == options.hosts.end() ? HostConfig() : it->second;
  }

  std::string OriginFor(const std::string& host) const {
    HostConfig cfg = ConfigFor(host);
    bool plain = cfg.plain_http.value_or(IsLoopbackName(host));
    std::string api_host = host == "docker.io" ? "registry-1.docker.io" : host;
    return StrCat(plain ? "http://" : "https://", api_host);
  }

  Endpoint& EndpointAt(const std::string& host, const std::string& origin) {
    std::lock_guard<std::mutex> lock(mu);
    auto& slot = endpoints[origin];
    if (!slot) {
      HostConfig cfg = ConfigFor(host);
      ConnectionOptions conn = options.connection;
      conn.insecure_skip_verify = cfg.insecure_skip_verify;
      conn.ca_pem = cfg.ca_pem;
      int cap =
          cfg.max_concurrency > 0 ? cfg.max_concurrency : options.max_concurrency_per_registry;
      slot = std::make_unique<Endpoint>(host, origin, conn, std::max(1, cap), *transport, clock);
    }
    return *slot;
  }

  Endpoint& PrimaryEndpoint(const std::string& host) { return EndpointAt(host, OriginFor(host)); }

  // Mirrors first (pulls only), then the registry itself.
  std::vector<Endpoint*> PullEndpoints(const std::string& host) {
    std::vector<Endpoint*> out;
    for (const std::string& mirror : ConfigFor(host).mirrors) {
      std::string origin;
      std::string mirror_host;
      if (absl::StartsWith(mirror, "http://") || absl::StartsWith(mirror, "https://")) {
        origin = mirror;
        while (!origin.empty() && origin.back() == '/') origin.pop_back();
        mirror_host = origin.substr(origin.find("://") + 3);
      } else {
        mirror_host = mirror;
        origin = OriginFor(mirror);
      }
      out.push_back(&EndpointAt(mirror_host, origin));
    }
    out.push_back(&PrimaryEndpoint(host));
    return out;
  }

  absl::StatusOr<Credential> CredentialFor(const std::string& host, const CallOptions& call) {
    if (call.credentials) {
      KILN_ASSIGN_OR_RETURN(Credential c, call.credentials->Lookup(host));
      if (!c.empty()) return c;
    }
    if (credentials) return credentials->Lookup(host);
    return Credential();
  }

  absl::StatusOr<std::unique_ptr<Session>> NewSession(Endpoint& ep, const CallOptions& call) {
    KILN_ASSIGN_OR_RETURN(Credential cred, CredentialFor(ep.host, call));
    return std::make_unique<Session>(env, ep, std::move(cred), call);
  }

  static uint64_t ChunkSizeFor(const std::string& host, uint64_t wanted) {
    return internal::EffectiveChunkSize(host, wanted);
  }

  // Runs `fn` against each pull endpoint of `host` until one succeeds; cancellation stops at
  // once.  The registry's own error is reported when every endpoint fails.
  template <typename T>
  absl::StatusOr<T> OnPullEndpoints(const std::string& host, const std::string& repo,
                                    const CallOptions& call,
                                    const std::function<absl::StatusOr<T>(Session&)>& fn) {
    std::vector<Endpoint*> eps = PullEndpoints(host);
    absl::StatusOr<T> result = absl::UnknownError("no endpoint");
    for (Endpoint* ep : eps) {
      KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> s, NewSession(*ep, call));
      s->AddScope(RepositoryScope(repo, "pull"));
      result = fn(*s);
      if (result.ok() || absl::IsCancelled(result.status())) return result;
    }
    return result;
  }

  static std::string FlightKey(const std::string& host, const Digest& d) {
    return StrCat(host, "\n", d.str());
  }

  void RememberLocation(const std::string& key, const std::string& repo) {
    std::lock_guard<std::mutex> lock(mu);
    if (locations.size() >= kMaxKnownLocations) locations.clear();
    auto& repos = locations[key];
    if (std::find(repos.begin(), repos.end(), repo) == repos.end()) repos.push_back(repo);
  }

  std::vector<std::string> KnownLocations(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = locations.find(key);
    return it == locations.end() ? std::vector<std::string>() : it->second;
  }

  absl::Status DoEnsureBlob(Session& s, const std::string& repo, const oci::Descriptor& desc,
                            BlobProvider& provider, const std::vector<std::string>& hints,
                            PushCounters& counters) {
    KILN_ASSIGN_OR_RETURN(auto slot, internal::SemaphoreSlot::Take(s.endpoint().slots, s.cancel()));
    std::vector<std::string> sources;
    for (const auto& list : {KnownLocations(FlightKey(s.endpoint().host, desc.digest)), hints}) {
      for (const std::string& r : list) {
        if (r != repo && sources.size() < kMaxMountSources &&
            std::find(sources.begin(), sources.end(), r) == sources.end()) {
          sources.push_back(r);
        }
      }
    }
    internal::UploadSettings settings;
    settings.chunk_size = ChunkSizeFor(s.endpoint().host, ConfigFor(s.endpoint().host).chunk_size);
    KILN_ASSIGN_OR_RETURN(internal::BlobOutcome outcome,
                          internal::PushBlob(s, repo, desc, provider, sources, settings));
    switch (outcome) {
      case internal::BlobOutcome::kSkipped:
        ++counters.skipped;
        break;
      case internal::BlobOutcome::kMounted:
        ++counters.mounted;
        break;
      case internal::BlobOutcome::kUploaded:
        ++counters.uploaded;
        break;
    }
    return absl::OkStatus();
  }

  // Makes `desc` present in `repo`, once per (registry, digest) at a time: a duplicate waits for
  // the transfer in flight, then finds the blob (same repository) or mounts it (another).
  absl::Status EnsureBlob(Session& s, const std::string& repo, const oci::Descriptor& desc,
                          BlobProvider& provider, const std::vector<std::string>& hints,
                          PushCounters& counters) {
    const std::string key = FlightKey(s.endpoint().host, desc.digest);
    for (;;) {
      std::shared_ptr<Flight> flight;
      bool owner = false;
      {
        std::lock_guard<std::mutex> lock(mu);
        auto it = push_flights.find(key);
        if (it != push_flights.end()) {
          flight = it->second;
        } else {
          flight = std::make_shared<Flight>();
          flight->repo = repo;
          push_flights[key] = flight;
          owner = true;
        }
      }
      if (!owner) {
        KILN_RETURN_IF_ERROR(flight->Wait(s.cancel()));
        if (flight->status.ok() && flight->repo == repo) {
          ++counters.deduped;
          return absl::OkStatus();
        }
        continue;
      }
      absl::Status st = DoEnsureBlob(s, repo, desc, provider, hints, counters);
      if (st.ok()) RememberLocation(key, repo);
      {
        std::lock_guard<std::mutex> lock(mu);
        push_flights.erase(key);
      }
      flight->Finish(st);
      return st;
    }
  }

  absl::StatusOr<std::string> FetchBlobOn(Session& s, const std::string& repo,
                                          const oci::Descriptor& desc, size_t max_size) {
    if (desc.size < 0 || static_cast<uint64_t>(desc.size) > max_size) {
      return absl::ResourceExhaustedError(StrCat("blob ", desc.digest.str(), " of ", desc.size,
                                                 " bytes exceeds the limit of ", max_size));
    }
    StringBlobWriter writer(max_size);
    KILN_RETURN_IF_ERROR(internal::DownloadBlob(s, repo, desc, writer));
    return writer.Take();
  }

  absl::StatusOr<ResolvedImage> ResolveOn(Session& s, const ImageReference& ref,
                                          const PlatformMatcher& matcher,
                                          const std::string& platform_text) {
    KILN_ASSIGN_OR_RETURN(FetchedManifest current,
                          internal::GetManifest(s, ref.path, TagOrDigest(ref), ref.digest));
    ResolvedImage out;
    bool entry_without_platform = false;
    for (int depth = 0; depth <= kMaxIndexDepth; ++depth) {
      if (IsIndexType(current.media_type)) {
        if (!out.index) out.index = current;
        KILN_ASSIGN_OR_RETURN(oci::Index index, oci::DecodeIndex(current.bytes));
        std::optional<size_t> pick = SelectIndexEntry(index.manifests, matcher);
        if (!pick) {
          return absl::NotFoundError(StrCat("resolve ", Quote(ref.String()), ": no manifest for ",
                                            platform_text, " in index ", current.digest.str()));
        }
        const oci::Descriptor& entry = index.manifests[*pick];
        entry_without_platform = !entry.platform.has_value();
        KILN_ASSIGN_OR_RETURN(current,
                              internal::GetManifest(s, ref.path, entry.digest.str(), entry.digest));
        continue;
      }
      if (!IsManifestType(current.media_type)) {
        return absl::UnimplementedError(StrCat("resolve ", Quote(ref.String()),
                                               ": unsupported manifest media type ",
                                               Quote(current.media_type)));
      }
      KILN_ASSIGN_OR_RETURN(oci::Manifest manifest, oci::DecodeManifest(current.bytes));
      KILN_ASSIGN_OR_RETURN(out.config, FetchBlobOn(s, ref.path, manifest.config, 64 << 20));
      if (out.index && entry_without_platform) {
        KILN_ASSIGN_OR_RETURN(oci::Image image, oci::DecodeImage(out.config));
        oci::Platform p;
        p.os = image.platform.os;
        p.architecture = image.platform.architecture;
        if (!matcher.Match(p)) {
          return absl::NotFoundError(StrCat("resolve ", Quote(ref.String()), ": no manifest for ",
                                            platform_text, " in index ", out.index->digest.str()));
        }
      }
      out.config_descriptor = manifest.config;
      out.digest = current.digest;
      out.media_type = current.media_type;
      out.manifest = std::move(current.bytes);
      return out;
    }
    return absl::FailedPreconditionError(
        StrCat("resolve ", Quote(ref.String()), ": indexes nested too deep"));
  }

  // Downloads into `writer` from the first pull endpoint that serves the blob.  `take_slot`
  // is false when the caller already holds a transfer slot of this registry (a Copy's upload
  // reading from its download), which must not wait for a second one.
  absl::Status PullInto(const ImageReference& repo, const oci::Descriptor& desc, BlobWriter& writer,
                        const CallOptions& call, bool take_slot) {
    absl::StatusOr<bool> r = OnPullEndpoints<bool>(
        repo.domain, repo.path, call, [&](Session& s) -> absl::StatusOr<bool> {
          std::unique_ptr<internal::SemaphoreSlot> slot;
          if (take_slot) {
            KILN_ASSIGN_OR_RETURN(slot,
                                  internal::SemaphoreSlot::Take(s.endpoint().slots, s.cancel()));
          }
          absl::Status st = internal::DownloadBlob(s, repo.path, desc, writer);
          // Bytes from an endpoint that served bad content must not seed the next one.
          if (absl::IsDataLoss(st)) writer.Truncate().IgnoreError();
          if (!st.ok()) return st;
          return true;
        });
    if (r.ok()) RememberLocation(FlightKey(repo.domain, desc.digest), repo.path);
    return r.status();
  }

  // The blobs a push must make present: given, or read from the manifests.
  static absl::StatusOr<std::vector<oci::Descriptor>> BlobsOf(const PushRequest& req) {
    if (!req.blobs.empty()) return req.blobs;
    std::vector<oci::Descriptor> out;
    std::set<Digest> seen;
    std::vector<const ManifestToPush*> docs;
    for (const auto& c : req.children) docs.push_back(&c);
    docs.push_back(&req.manifest);
    for (const ManifestToPush* doc : docs) {
      std::string type =
          doc->media_type.empty() ? internal::ManifestMediaType("", doc->bytes) : doc->media_type;
      if (IsIndexType(type)) continue;
      if (!IsManifestType(type)) {
        return absl::InvalidArgumentError(
            StrCat("push: cannot list the blobs of a document of media type ", Quote(type),
                   "; pass them in PushRequest::blobs"));
      }
      KILN_ASSIGN_OR_RETURN(oci::Manifest m, oci::DecodeManifest(doc->bytes));
      std::vector<oci::Descriptor> all = {m.config};
      all.insert(all.end(), m.layers.begin(), m.layers.end());
      for (auto& d : all) {
        if (seen.insert(d.digest).second) out.push_back(d);
      }
    }
    return out;
  }
};

Registry::Registry(RegistryOptions options, std::shared_ptr<CredentialSource> credentials,
                   std::shared_ptr<HttpTransport> transport, Clock* clock)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(credentials), std::move(transport),
                                   clock ? *clock : RealClock())) {}

Registry::~Registry() = default;

std::string Registry::EndpointFor(const std::string& registry_host) const {
  return impl_->OriginFor(registry_host);
}

absl::StatusOr<ResolvedImage> Registry::Resolve(const ImageReference& ref,
                                                const std::optional<oci::Platform>& platform,
                                                const CallOptions& call) {
  oci::Platform want = platform.value_or(oci::HostPlatform());
  PlatformMatcher matcher(want);
  std::string platform_text = oci::FormatPlatform(want);
  return impl_->OnPullEndpoints<ResolvedImage>(ref.domain, ref.path, call, [&](Session& s) {
    return impl_->ResolveOn(s, ref, matcher, platform_text);
  });
}

absl::StatusOr<FetchedManifest> Registry::FetchManifest(const ImageReference& ref,
                                                        const CallOptions& call) {
  return impl_->OnPullEndpoints<FetchedManifest>(ref.domain, ref.path, call, [&](Session& s) {
    return internal::GetManifest(s, ref.path, TagOrDigest(ref), ref.digest);
  });
}

absl::StatusOr<oci::Descriptor> Registry::HeadManifest(const ImageReference& ref,
                                                       const CallOptions& call) {
  return impl_->OnPullEndpoints<oci::Descriptor>(ref.domain, ref.path, call, [&](Session& s) {
    return internal::HeadManifest(s, ref.path, TagOrDigest(ref));
  });
}

absl::StatusOr<std::string> Registry::FetchBlob(const ImageReference& repo,
                                                const oci::Descriptor& desc,
                                                const CallOptions& call, size_t max_size) {
  return impl_->OnPullEndpoints<std::string>(repo.domain, repo.path, call, [&](Session& s) {
    return impl_->FetchBlobOn(s, repo.path, desc, max_size);
  });
}

absl::Status Registry::PullBlob(const ImageReference& repo, const oci::Descriptor& desc,
                                BlobWriter& writer, const CallOptions& call) {
  return impl_->PullInto(repo, desc, writer, call, /*take_slot=*/true);
}

absl::Status Registry::PullBlob(const ImageReference& repo, const oci::Descriptor& desc,
                                BlobSink& sink, const CallOptions& call) {
  const std::string key = Impl::FlightKey(repo.domain, desc.digest);
  for (;;) {
    std::shared_ptr<Flight> flight;
    bool owner = false;
    {
      std::lock_guard<std::mutex> lock(impl_->mu);
      auto it = impl_->pull_flights.find(key);
      if (it != impl_->pull_flights.end()) {
        flight = it->second;
      } else {
        flight = std::make_shared<Flight>();
        impl_->pull_flights[key] = flight;
        owner = true;
      }
    }
    if (!owner) {
      // After the other pull, the sink has the blob (Writer() says so) or this pull runs.
      KILN_RETURN_IF_ERROR(flight->Wait(call.cancel));
      continue;
    }
    absl::Status st = [&]() -> absl::Status {
      KILN_ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> writer, sink.Writer(desc));
      if (!writer) return absl::OkStatus();
      return PullBlob(repo, desc, *writer, call);
    }();
    {
      std::lock_guard<std::mutex> lock(impl_->mu);
      impl_->pull_flights.erase(key);
    }
    flight->Finish(st);
    return st;
  }
}

absl::Status Registry::PushBlob(const ImageReference& repo, const oci::Descriptor& desc,
                                BlobProvider& provider, const CallOptions& call) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> s,
                        impl_->NewSession(impl_->PrimaryEndpoint(repo.domain), call));
  s->AddScope(RepositoryScope(repo.path, "pull,push"));
  PushCounters counters;
  return impl_->EnsureBlob(*s, repo.path, desc, provider, {}, counters);
}

absl::StatusOr<oci::Descriptor> Registry::PushStream(const ImageReference& repo,
                                                     BlobReader& producer, std::string media_type,
                                                     const CallOptions& call) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> s,
                        impl_->NewSession(impl_->PrimaryEndpoint(repo.domain), call));
  s->AddScope(RepositoryScope(repo.path, "pull,push"));
  uint64_t chunk = impl_->ChunkSizeFor(repo.domain, impl_->options.stream_chunk_size);
  KILN_ASSIGN_OR_RETURN(auto slot, internal::SemaphoreSlot::Take(s->endpoint().slots, call.cancel));
  KILN_ASSIGN_OR_RETURN(oci::Descriptor desc, internal::PushStream(*s, repo.path, producer,
                                                                   std::move(media_type), chunk));
  impl_->RememberLocation(Impl::FlightKey(repo.domain, desc.digest), repo.path);
  return desc;
}

absl::StatusOr<PushResult> Registry::PushImage(const PushRequest& req, const CallOptions& call) {
  if (req.targets.empty()) return absl::InvalidArgumentError("push: no target names");
  if (req.provider == nullptr) return absl::InvalidArgumentError("push: no blob provider");
  PushResult result;
  result.digest = Digest::Sha256Of(req.manifest.bytes);
  for (const ImageReference& t : req.targets) {
    if (t.digest && *t.digest != result.digest) {
      return absl::InvalidArgumentError(StrCat("push to ", Quote(t.String()),
                                               ": the manifest's digest is ", result.digest.str()));
    }
  }
  KILN_ASSIGN_OR_RETURN(std::vector<oci::Descriptor> blobs, Impl::BlobsOf(req));

  // One group per registry: a session (one token covering every repository) and its names.
  struct Group {
    std::string host;
    std::vector<std::string> repos;
    std::vector<const ImageReference*> targets;
    std::unique_ptr<Session> session;
  };
  CancelSource cancel_all(call.cancel);
  CallOptions inner = call;
  inner.cancel = cancel_all.token();
  std::vector<Group> groups;
  for (const ImageReference& t : req.targets) {
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const Group& g) { return g.host == t.domain; });
    if (it == groups.end()) {
      groups.push_back(Group{t.domain, {}, {}, nullptr});
      it = groups.end() - 1;
    }
    if (std::find(it->repos.begin(), it->repos.end(), t.path) == it->repos.end()) {
      it->repos.push_back(t.path);
    }
    it->targets.push_back(&t);
  }
  for (Group& g : groups) {
    KILN_ASSIGN_OR_RETURN(g.session, impl_->NewSession(impl_->PrimaryEndpoint(g.host), inner));
    for (const std::string& repo : g.repos) g.session->AddScope(RepositoryScope(repo, "pull,push"));
    for (const auto& [digest, refs] : req.mount_sources) {
      for (const ImageReference& r : refs) {
        if (r.domain == g.host) g.session->AddScope(RepositoryScope(r.path, "pull"));
      }
    }
  }

  PushCounters counters;
  std::vector<std::future<absl::Status>> tasks;
  for (Group& g : groups) {
    for (const oci::Descriptor& blob : blobs) {
      std::vector<std::string> hints;
      if (auto it = req.mount_sources.find(blob.digest); it != req.mount_sources.end()) {
        for (const ImageReference& r : it->second) {
          if (r.domain == g.host) hints.push_back(r.path);
        }
      }
      tasks.push_back(impl_->pool.Submit([&, hints, blob, group = &g]() -> absl::Status {
        for (const std::string& repo : group->repos) {
          absl::Status st =
              impl_->EnsureBlob(*group->session, repo, blob, *req.provider, hints, counters);
          if (!st.ok()) {
            cancel_all.Cancel("another blob of the push failed");
            return st;
          }
        }
        return absl::OkStatus();
      }));
    }
  }
  absl::Status first_error;
  for (auto& task : tasks) {
    absl::Status st = task.get();
    // The failure that caused the cancellation explains more than the cancellations it caused.
    if (!st.ok() &&
        (first_error.ok() || (absl::IsCancelled(first_error) && !absl::IsCancelled(st)))) {
      first_error = st;
    }
  }
  if (!first_error.ok()) return first_error;

  // Every blob is in place in every repository: now the manifests.
  for (Group& g : groups) {
    for (const std::string& repo : g.repos) {
      for (const ManifestToPush& child : req.children) {
        KILN_RETURN_IF_ERROR(
            internal::PutManifest(*g.session, repo, Digest::Sha256Of(child.bytes).str(), child));
      }
      for (const ImageReference* t : g.targets) {
        if (t->path != repo) continue;
        if (!t->tag.empty() || !t->digest) {
          KILN_RETURN_IF_ERROR(internal::PutManifest(
              *g.session, repo, t->tag.empty() ? "latest" : t->tag, req.manifest));
        }
        if (t->digest) {
          KILN_RETURN_IF_ERROR(
              internal::PutManifest(*g.session, repo, t->digest->str(), req.manifest));
        }
      }
    }
  }
  result.stats = counters.Snapshot();
  return result;
}

namespace {

// Opens blobs of a remote image by pulling them through a bounded pipe.
class RemoteBlobProvider : public BlobProvider {
 public:
  using PullFn =
      std::function<absl::Status(const oci::Descriptor&, BlobWriter&, const CallOptions&)>;
  RemoteBlobProvider(PullFn pull, const CallOptions& call) : pull_(std::move(pull)), call_(call) {}

  absl::StatusOr<std::unique_ptr<BlobReader>> Open(const oci::Descriptor& desc,
                                                   uint64_t offset) override {
    return std::unique_ptr<BlobReader>(new Reader(pull_, desc, offset, call_));
  }

 private:
  class Reader : public BlobReader {
   public:
    Reader(const PullFn& pull, const oci::Descriptor& desc, uint64_t skip, const CallOptions& call)
        : pipe_(8 << 20), cancel_(call.cancel), skip_(skip) {
      CallOptions inner = call;
      inner.cancel = cancel_.token();
      thread_ = std::thread([this, pull, desc, inner] {
        PipeWriter writer(pipe_);
        pipe_.Close(pull(desc, writer, inner));
      });
    }
    ~Reader() override {
      pipe_.ReaderGone();
      cancel_.Cancel("copy reader closed");
      thread_.join();
    }
    absl::StatusOr<size_t> Read(char* buf, size_t n) override {
      while (skip_ > 0) {
        char scratch[64 << 10];
        KILN_ASSIGN_OR_RETURN(size_t got,
                              pipe_.Pop(scratch, std::min<uint64_t>(skip_, sizeof(scratch))));
        if (got == 0) return absl::OutOfRangeError("copied blob shorter than the resume offset");
        skip_ -= got;
      }
      return pipe_.Pop(buf, n);
    }

   private:
    Pipe pipe_;
    CancelSource cancel_;
    uint64_t skip_;
    std::thread thread_;
  };

  PullFn pull_;
  const CallOptions& call_;
};

}  // namespace

absl::StatusOr<PushResult> Registry::Copy(const ImageReference& src, const ImageReference& dst,
                                          const std::optional<oci::Platform>& platform,
                                          const CallOptions& call) {
  PushRequest req;
  req.targets.push_back(dst.NameOnly() ? dst.WithDefaultTag() : dst);
  if (platform) {
    KILN_ASSIGN_OR_RETURN(ResolvedImage image, Resolve(src, platform, call));
    req.manifest = ManifestToPush{image.manifest, image.media_type};
  } else {
    KILN_ASSIGN_OR_RETURN(FetchedManifest root, FetchManifest(src, call));
    if (IsIndexType(root.media_type)) {
      KILN_ASSIGN_OR_RETURN(oci::Index index, oci::DecodeIndex(root.bytes));
      for (const oci::Descriptor& d : index.manifests) {
        ImageReference child = src;
        child.tag.clear();
        child.digest = d.digest;
        KILN_ASSIGN_OR_RETURN(FetchedManifest m, FetchManifest(child, call));
        if (!IsManifestType(m.media_type)) {
          return absl::UnimplementedError(
              StrCat("copy ", Quote(src.String()), ": nested index ", d.digest.str()));
        }
        req.children.push_back(ManifestToPush{std::move(m.bytes), m.media_type});
      }
    }
    req.manifest = ManifestToPush{std::move(root.bytes), root.media_type};
  }
  KILN_ASSIGN_OR_RETURN(std::vector<oci::Descriptor> blobs, Impl::BlobsOf(req));
  ImageReference src_repo = src;
  src_repo.tag.clear();
  src_repo.digest.reset();
  for (const oci::Descriptor& b : blobs) req.mount_sources[b.digest].push_back(src_repo);
  // The download runs under the upload's transfer slot (see PullInto).
  RemoteBlobProvider provider(
      [this, src_repo](const oci::Descriptor& d, BlobWriter& w, const CallOptions& c) {
        return impl_->PullInto(src_repo, d, w, c, /*take_slot=*/false);
      },
      call);
  req.provider = &provider;
  return PushImage(req, call);
}

}  // namespace kiln::registry
