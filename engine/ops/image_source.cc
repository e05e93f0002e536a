#include "engine/ops/image_source.h"

#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "base/status.h"
#include "base/strings.h"
#include "engine/ops/image_resolver.h"
#include "engine/ops/session.h"
#include "engine/ops/source_op.h"
#include "engine/solver/progress.h"
#include "engine/worker/worker.h"
#include "nlohmann/json.hpp"
#include "snapshotter/image_import.h"

namespace kiln::engine {
namespace {

// The blobs a FetchBlobs running on another thread has stored so far; the unpacking side waits
// here for the next layer's.
class ArrivedBlobs {
 public:
  void Add(const Digest& d) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stored_.insert(d.str());
    }
    cv_.notify_all();
  }
  // The fetch returned (done or failed): nothing more will arrive.
  void Finish() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      finished_ = true;
    }
    cv_.notify_all();
  }
  // True once `d` is stored; false when the fetch finished without it.
  bool WaitFor(const Digest& d) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return stored_.count(d.str()) > 0 || finished_; });
    return stored_.count(d.str()) > 0;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> stored_;
  bool finished_ = false;
};

// The image an op will unpack: the resolution, with the layer limit applied.
struct PlannedImage {
  ImageResolution res;
  std::vector<oci::Descriptor> layers;
  std::vector<Digest> diff_ids;
  std::vector<Digest> chain;
};

// BuildKit's mainManifestKey: the JSON Go marshals for that struct.
Digest MainManifestKey(const Digest& target, const oci::Platform& p,
                       const std::optional<int>& limit) {
  nlohmann::ordered_json j;
  j["Digest"] = target.str();
  j["OS"] = p.os;
  j["Arch"] = p.architecture;
  if (!p.variant.empty()) j["Variant"] = p.variant;
  if (limit) j["Limit"] = *limit;
  return Digest::Sha256Of(j.dump());
}

class ImageSourceOp : public Op {
 public:
  ImageSourceOp(const LlbOp& op, const OpEnv& env, ImageReference ref, ImageResolveMode mode,
                std::optional<int> limit)
      : platform_(op.platform),
        worker_(env.worker),
        resolver_(env.worker, env.registry),
        ref_(std::move(ref)),
        mode_(mode),
        limit_(limit) {}

  absl::StatusOr<CacheMap> GetCacheMap(const OpContext& ctx) override {
    KILN_ASSIGN_OR_RETURN(PlannedImage plan, Plan(ctx));
    CacheMap cm;
    cm.digest = SourceCacheDigest(MainManifestKey(plan.res.target.digest, platform_, limit_).str());
    if (!plan.chain.empty()) cm.alt_digests.push_back(SourceCacheDigest(plan.chain.back().str()));
    plan_ = std::move(plan);
    return cm;
  }

  absl::StatusOr<std::vector<ResultRef>> Exec(const OpContext& ctx,
                                              std::span<const ResultRef>) override {
    if (!plan_) {
      KILN_ASSIGN_OR_RETURN(PlannedImage plan, Plan(ctx));
      plan_ = std::move(plan);
    }
    const PlannedImage& plan = *plan_;
    if (plan.layers.empty()) return std::vector<ResultRef>{worker_->EmptyResult()};

    std::vector<size_t> missing;
    for (size_t i = 0; i < plan.chain.size(); ++i) {
      auto st = worker_->snapshots().Stat(plan.chain[i].str());
      if (!st.ok() || st->kind != snapshotter::SnapshotKind::kCommitted) missing.push_back(i);
    }
    if (!missing.empty()) KILN_RETURN_IF_ERROR(FetchAndUnpack(ctx, plan, missing));
    KILN_RETURN_IF_ERROR(RecordLayers(plan));
    KILN_ASSIGN_OR_RETURN(ResultRef ref, worker_->RefFor(plan.chain.back().str()));
    return std::vector<ResultRef>{std::move(ref)};
  }

 private:
  ImageResolveOptions Options(const OpContext& ctx) const {
    ImageResolveOptions o;
    o.cancel = ctx.cancel;
    if (auto* creds = ctx.session.FindFirst<std::shared_ptr<registry::CredentialSource>>(
            kSessionRegistryAuth)) {
      o.credentials = *creds;
    }
    return o;
  }

  absl::StatusOr<PlannedImage> Plan(const OpContext& ctx) {
    PlannedImage plan;
    {
      ProgressTask task(ctx.progress, StrCat("resolve ", ref_.String()));
      KILN_ASSIGN_OR_RETURN(plan.res, resolver_.Resolve(ref_, platform_, mode_, Options(ctx)));
    }
    plan.layers = plan.res.manifest.layers;
    plan.diff_ids = plan.res.config.rootfs.diff_ids;
    const std::string what = StrCat("image ", Quote(plan.res.ref.String()));
    if (plan.layers.size() != plan.diff_ids.size()) {
      return absl::InvalidArgumentError(StrCat(what, ": manifest has ", plan.layers.size(),
                                               " layers but the config lists ",
                                               plan.diff_ids.size(), " diff_ids"));
    }
    if (limit_) {
      if (static_cast<size_t>(*limit_) > plan.layers.size()) {
        return absl::InvalidArgumentError(
            StrCat(what, ": layer limit ", *limit_,
                   " is greater than the number of layers in the image ", plan.layers.size()));
      }
      plan.layers.resize(*limit_);
      plan.diff_ids.resize(*limit_);
    }
    plan.chain = snapshotter::ChainIds(plan.diff_ids);
    return plan;
  }

  // Downloads run on another thread while the layers are unpacked in order, each as soon as
  // its blob is stored: a pull costs about the download plus the last layer's unpack, not the
  // download plus every unpack.  A failed unpack cancels the downloads still running.
  absl::Status FetchAndUnpack(const OpContext& ctx, const PlannedImage& plan,
                              const std::vector<size_t>& missing) {
    ArrivedBlobs arrived;
    CancelSource fetch_cancel(ctx.cancel);
    absl::Status fetched;
    std::thread fetcher([&] {
      fetched = Fetch(ctx, plan, missing, fetch_cancel.token(), arrived);
      arrived.Finish();
    });
    bool starved = false;
    absl::Status unpacked = Unpack(ctx, plan, missing, arrived, &starved);
    if (!unpacked.ok()) fetch_cancel.Cancel("unpacking the image failed");
    fetcher.join();
    if (starved && fetched.ok()) {
      return absl::InternalError(
          StrCat("pull of ", Quote(plan.res.ref.String()), " ended without storing every layer"));
    }
    return unpacked.ok() ? fetched : unpacked;
  }

  absl::Status Fetch(const OpContext& ctx, const PlannedImage& plan,
                     const std::vector<size_t>& missing, const CancelToken& cancel,
                     ArrivedBlobs& arrived) {
    std::vector<oci::Descriptor> blobs;
    for (size_t i : missing) blobs.push_back(plan.layers[i]);
    ImageResolveOptions o = Options(ctx);
    o.cancel = cancel;
    o.blob_stored = [&arrived](const Digest& d) { arrived.Add(d); };
    const VertexProgress progress = ctx.progress;
    auto started = Clock::now();
    o.progress = [progress, started](const registry::BlobProgress& p) {
      StatusUpdate u;
      u.id = p.digest.str();
      u.current = p.done;
      u.total = p.total;
      u.started = started;
      if (p.phase == registry::BlobProgress::Phase::kDone) u.completed = Clock::now();
      progress.Status(u);
    };
    return resolver_.FetchBlobs(plan.res.ref, blobs, o);
  }

  // Layer by layer in order, each once its blob has arrived, so each gets its own progress line;
  // snapshotter::Unpack skips the committed prefix.  Sets *starved and stops when the fetch
  // ended without a blob (its error says why).
  absl::Status Unpack(const OpContext& ctx, const PlannedImage& plan,
                      const std::vector<size_t>& missing, ArrivedBlobs& arrived, bool* starved) {
    for (size_t i : missing) {
      if (!arrived.WaitFor(plan.layers[i].digest)) {
        *starved = true;
        return absl::OkStatus();
      }
      ProgressTask task(ctx.progress, StrCat("extracting ", plan.layers[i].digest.str()),
                        plan.layers[i].size);
      snapshotter::ImportedImage prefix;
      prefix.manifest_digest = plan.res.manifest_digest;
      prefix.manifest = plan.res.manifest;
      prefix.manifest.layers.assign(plan.layers.begin(), plan.layers.begin() + i + 1);
      prefix.config_digest = plan.res.config_digest;
      prefix.config = plan.res.config;
      prefix.config.rootfs.diff_ids.assign(plan.diff_ids.begin(), plan.diff_ids.begin() + i + 1);
      snapshotter::UnpackOptions uo;
      uo.cancel = ctx.cancel;
      auto top = snapshotter::Unpack(worker_->content(), worker_->snapshots(), prefix, uo);
      if (!top.ok()) {
        return Annotate(top.status(), StrCat("unpack image ", Quote(plan.res.ref.String())));
      }
    }
    return absl::OkStatus();
  }

  absl::Status RecordLayers(const PlannedImage& plan) {
    for (size_t i = 0; i < plan.layers.size(); ++i) {
      const std::string key = plan.chain[i].str();
      KILN_ASSIGN_OR_RETURN(std::vector<LayerRecord> known, worker_->images().Layers(key));
      bool have = false;
      for (const auto& l : known) have = have || l.blob.digest == plan.layers[i].digest;
      if (have) continue;
      LayerRecord rec;
      rec.blob = plan.layers[i];
      rec.blob.urls.clear();
      rec.blob.platform.reset();
      rec.diff_id = plan.diff_ids[i];
      KILN_RETURN_IF_ERROR(worker_->images().PutLayer(key, rec));
    }
    return absl::OkStatus();
  }

  oci::Platform platform_;
  Worker* worker_;
  ImageResolver resolver_;
  ImageReference ref_;
  ImageResolveMode mode_;
  std::optional<int> limit_;
  std::optional<PlannedImage> plan_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Op>> NewImageSourceOp(const LlbOp& op, const OpEnv& env) {
  const pb::SourceOp& src = op.op.source();
  KILN_ASSIGN_OR_RETURN(auto parts, SplitSourceIdentifier(src.identifier()));
  auto ref = ParseNormalizedReference(parts.second);
  if (!ref.ok()) return Annotate(ref.status(), StrCat("source ", Quote(src.identifier())));
  SourceAttrs attrs(src);
  auto mode = ParseImageResolveMode(attrs.Get("image.resolvemode"));
  if (!mode.ok()) return attrs.Invalid("image.resolvemode", "want default, pull or local");
  const std::string record = attrs.Get("image.recordtype");
  if (!(record.empty() || record == "regular" || record == "internal" || record == "frontend")) {
    return attrs.Invalid("image.recordtype", "want regular, internal or frontend");
  }
  std::optional<int> limit;
  if (attrs.Find("image.layerlimit")) {
    KILN_ASSIGN_OR_RETURN(int64_t n, attrs.Int("image.layerlimit", 0));
    if (n <= 0 || n > (1 << 20)) return attrs.Invalid("image.layerlimit", "want a count > 0");
    limit = static_cast<int>(n);
  }
  return std::unique_ptr<Op>(new ImageSourceOp(op, env, std::move(*ref), *mode, limit));
}

}  // namespace kiln::engine
