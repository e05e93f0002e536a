#include "llb/state.h"

#include <array>
#include <cstdio>

#include <arpa/inet.h>

#include "base/go_compat.h"
#include "base/status.h"
#include "base/strings.h"
#include "llb/caps.h"
#include "llb/definition.h"
#include "llb/go_compat.h"

namespace kiln::llb {

std::string_view ResolveModeString(ResolveMode mode) {
  switch (mode) {
    case ResolveMode::kPull:
      return kAttrImageResolveModeForcePull;
    case ResolveMode::kLocal:
      return kAttrImageResolveModePreferLocal;
    case ResolveMode::kDefault:
      break;
  }
  return kAttrImageResolveModeDefault;
}

// ---- EnvList ----

EnvList EnvList::Delete(std::string_view key) const {
  EnvList out = *this;
  for (auto it = out.items_.begin(); it != out.items_.end(); ++it) {
    if (it->first == key) {
      out.items_.erase(it);
      break;
    }
  }
  return out;
}

EnvList EnvList::AddOrReplace(std::string_view key, std::string_view value) const {
  EnvList out = Delete(key);
  out.items_.emplace_back(std::string(key), std::string(value));
  return out;
}

EnvList EnvList::SetDefault(std::string_view key, std::string_view value) const {
  if (Get(key)) return *this;
  EnvList out = *this;
  out.items_.emplace_back(std::string(key), std::string(value));
  return out;
}

std::optional<std::string> EnvList::Get(std::string_view key) const {
  for (const auto& [k, v] : items_) {
    if (k == key) return v;
  }
  return std::nullopt;
}

std::vector<std::string> EnvList::ToArray() const {
  std::vector<std::string> out;
  out.reserve(items_.size());
  for (const auto& [k, v] : items_) out.push_back(StrCat(k, "=", v));
  return out;
}

// ---- State ----

State::State() {
  StateValues v;
  v.dir = "/";
  values_ = std::make_shared<const StateValues>(std::move(v));
}

State State::FromOutput(std::shared_ptr<const Output> output) {
  State s;
  s.output_ = std::move(output);
  if (s.output_) {
    if (auto p = s.output_->platform()) return s.Platform(*p);
  }
  return s;
}

State State::WithOutput(std::shared_ptr<const Output> output) const {
  State s;
  s.output_ = std::move(output);
  s.values_ = values_;
  if (s.output_) {
    if (auto p = s.output_->platform()) return s.Platform(*p);
  }
  return s;
}

State State::WithValues(StateValues values) const {
  State s;
  s.output_ = output_;
  s.values_ = std::make_shared<const StateValues>(std::move(values));
  return s;
}

State State::AddEnv(std::string_view key, std::string_view value) const {
  StateValues v = *values_;
  v.env = v.env.AddOrReplace(key, value);
  return WithValues(std::move(v));
}

State State::Dir(std::string_view dir) const {
  StateValues v = *values_;
  if (PathIsAbs(dir)) {
    v.dir = std::string(dir);
  } else {
    std::string prev = v.dir.empty() ? "/" : v.dir;
    v.dir = PathJoin({prev, dir});
  }
  return WithValues(std::move(v));
}

State State::User(std::string_view user) const {
  StateValues v = *values_;
  v.user = std::string(user);
  return WithValues(std::move(v));
}

State State::Hostname(std::string_view hostname) const {
  StateValues v = *values_;
  v.hostname = std::string(hostname);
  return WithValues(std::move(v));
}

State State::Network(pb::NetMode mode) const {
  StateValues v = *values_;
  v.network = mode;
  return WithValues(std::move(v));
}

State State::Security(pb::SecurityMode mode) const {
  StateValues v = *values_;
  v.security = mode;
  return WithValues(std::move(v));
}

State State::Platform(const oci::Platform& platform) const {
  StateValues v = *values_;
  v.platform = llb::NormalizePlatform(platform);
  return WithValues(std::move(v));
}

State State::AddExtraHost(std::string_view host, std::string_view ip) const {
  StateValues v = *values_;
  v.extra_hosts.push_back({std::string(host), std::string(ip)});
  return WithValues(std::move(v));
}

State State::AddUlimit(std::string_view name, int64_t soft, int64_t hard) const {
  StateValues v = *values_;
  v.ulimits.push_back({std::string(name), soft, hard});
  return WithValues(std::move(v));
}

State State::WithCgroupParent(std::string_view cgroup_parent) const {
  StateValues v = *values_;
  v.cgroup_parent = std::string(cgroup_parent);
  return WithValues(std::move(v));
}

State State::Args(std::vector<std::string> args) const {
  StateValues v = *values_;
  v.args = std::move(args);
  return WithValues(std::move(v));
}

State State::ValidExitCodes(std::vector<int32_t> codes) const {
  StateValues v = *values_;
  v.valid_exit_codes = std::move(codes);
  return WithValues(std::move(v));
}

absl::StatusOr<State> State::WithImageConfig(std::string_view config_json) const {
  absl::StatusOr<oci::Image> img = oci::DecodeImage(config_json);
  if (!img.ok()) return Annotate(img.status(), "apply image config to LLB state");
  State s = *this;
  for (const std::string& kv : img->config.env) {
    size_t eq = kv.find('=');
    std::string_view key = std::string_view(kv).substr(0, eq);
    if (key.empty()) continue;
    s = s.AddEnv(
        key, eq == std::string::npos ? std::string_view() : std::string_view(kv).substr(eq + 1));
  }
  s = s.Dir(img->config.working_dir);
  if (!img->platform.architecture.empty() && !img->platform.os.empty()) {
    oci::Platform p;
    p.os = img->platform.os;
    p.architecture = img->platform.architecture;
    p.variant = img->platform.variant;
    s = s.Platform(p);
  }
  return s;
}

State State::SetMarshalDefaults(Constraints defaults) const {
  State s = *this;
  s.marshal_defaults_ = std::make_shared<const Constraints>(std::move(defaults));
  return s;
}

absl::StatusOr<int64_t> DeferredOutput::index() const {
  if (!target_) return absl::FailedPreconditionError("LLB output used before it was bound");
  return target_->index();
}

// ---- Merge and Diff ----

namespace {

// An output with a fixed index and no platform (merge, diff, file).
class SimpleOutput : public Output {
 public:
  SimpleOutput(std::shared_ptr<const Vertex> v, int64_t index)
      : vertex_(std::move(v)), index_(index) {}
  const Vertex* vertex() const override { return vertex_.get(); }
  absl::StatusOr<int64_t> index() const override { return index_; }

 private:
  std::shared_ptr<const Vertex> vertex_;
  int64_t index_;
};

class MergeOp : public Vertex {
 public:
  MergeOp(std::vector<std::shared_ptr<const Output>> inputs, Constraints c)
      : inputs_(std::move(inputs)), constraints_(std::move(c)) {}

  std::vector<std::shared_ptr<const Output>> Inputs() const override { return inputs_; }

  absl::StatusOr<MarshaledVertex> Marshal(MarshalContext& ctx) const override {
    if (inputs_.size() < 2) return absl::InvalidArgumentError("merge must have at least 2 inputs");
    MarshaledConstraints mc = MarshalConstraints(ctx.constraints(), constraints_);
    mc.op.clear_platform();  // a merge is not platform specific
    pb::MergeOp* merge = mc.op.mutable_merge();
    for (const auto& in : inputs_) {
      merge->add_inputs()->set_input(mc.op.inputs_size());
      KILN_ASSIGN_OR_RETURN(pb::Input pin, ctx.ToInput(*in));
      *mc.op.add_inputs() = std::move(pin);
    }
    MarshaledVertex mv;
    mv.bytes = SerializeDeterministic(mc.op);
    mv.digest = OpDigest(mv.bytes);
    mv.metadata = std::move(mc.metadata);
    mv.locations = constraints_.source_locations;
    return mv;
  }

 private:
  std::vector<std::shared_ptr<const Output>> inputs_;
  Constraints constraints_;
};

class DiffOp : public Vertex {
 public:
  DiffOp(std::shared_ptr<const Output> lower, std::shared_ptr<const Output> upper, Constraints c)
      : lower_(std::move(lower)), upper_(std::move(upper)), constraints_(std::move(c)) {
    constraints_.AddCap(kCapDiffOp);
  }

  std::vector<std::shared_ptr<const Output>> Inputs() const override {
    std::vector<std::shared_ptr<const Output>> out;
    if (lower_) out.push_back(lower_);
    if (upper_) out.push_back(upper_);
    return out;
  }

  absl::StatusOr<MarshaledVertex> Marshal(MarshalContext& ctx) const override {
    MarshaledConstraints mc = MarshalConstraints(ctx.constraints(), constraints_);
    mc.op.clear_platform();  // a diff is not platform specific
    pb::DiffOp* diff = mc.op.mutable_diff();
    diff->mutable_lower()->set_input(lower_ ? mc.op.inputs_size() : -1);
    if (lower_) {
      KILN_ASSIGN_OR_RETURN(pb::Input pin, ctx.ToInput(*lower_));
      *mc.op.add_inputs() = std::move(pin);
    }
    diff->mutable_upper()->set_input(upper_ ? mc.op.inputs_size() : -1);
    if (upper_) {
      KILN_ASSIGN_OR_RETURN(pb::Input pin, ctx.ToInput(*upper_));
      *mc.op.add_inputs() = std::move(pin);
    }
    MarshaledVertex mv;
    mv.bytes = SerializeDeterministic(mc.op);
    mv.digest = OpDigest(mv.bytes);
    mv.metadata = std::move(mc.metadata);
    mv.locations = constraints_.source_locations;
    return mv;
  }

 private:
  std::shared_ptr<const Output> lower_, upper_;
  Constraints constraints_;
};

}  // namespace

State Merge(const std::vector<State>& inputs, const Constraints& constraints) {
  std::vector<const State*> nonempty;
  for (const State& s : inputs) {
    if (!s.IsScratch()) nonempty.push_back(&s);
  }
  if (nonempty.empty()) return State();
  if (nonempty.size() == 1) return *nonempty[0];
  Constraints c = constraints;
  c.AddCap(kCapMergeOp);
  std::vector<std::shared_ptr<const Output>> outs;
  for (const State* s : nonempty) outs.push_back(s->output());
  auto op = std::make_shared<MergeOp>(std::move(outs), std::move(c));
  return State::FromOutput(std::make_shared<SimpleOutput>(op, 0));
}

State Diff(const State& lower, const State& upper, const Constraints& constraints) {
  if (lower.IsScratch()) return upper.IsScratch() ? State() : upper;
  auto op = std::make_shared<DiffOp>(lower.output(), upper.output(), constraints);
  return State::FromOutput(std::make_shared<SimpleOutput>(op, 0));
}

// ---- IP formatting ----

absl::StatusOr<std::string> FormatIP(std::string_view ip) {
  std::string text(ip);
  std::array<uint8_t, 16> b{};
  if (inet_pton(AF_INET, text.c_str(), b.data()) == 1) {
    return StrCat(b[0], ".", b[1], ".", b[2], ".", b[3]);
  }
  if (inet_pton(AF_INET6, text.c_str(), b.data()) != 1) {
    return absl::InvalidArgumentError(StrCat("invalid IP address ", Quote(ip)));
  }
  // IPv4-mapped (::ffff:a.b.c.d) prints as IPv4, as Go's net.IP.String() does.
  bool mapped = b[10] == 0xff && b[11] == 0xff;
  for (int i = 0; i < 10 && mapped; ++i) mapped = b[i] == 0;
  if (mapped) return StrCat(b[12], ".", b[13], ".", b[14], ".", b[15]);
  // Longest run of (at least two) zero groups becomes "::"; the first run wins a tie.
  std::array<uint16_t, 8> g{};
  for (int i = 0; i < 8; ++i) g[i] = static_cast<uint16_t>(b[2 * i] << 8 | b[2 * i + 1]);
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (g[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && g[j] == 0) ++j;
    if (j - i >= 2 && j - i > best_len) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  std::string out;
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out.push_back(':');
    char buf[8];
    std::snprintf(buf, sizeof(buf), "%x", g[i]);
    out += buf;
  }
  return out;
}

}  // namespace kiln::llb
