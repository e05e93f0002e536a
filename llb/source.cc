#include "llb/source.h"

#include <map>

#include "base/reference.h"
#include "base/status.h"
#include "base/strings.h"
#include "llb/caps.h"
#include "llb/definition.h"
#include "llb/go_compat.h"

namespace kiln::llb {
namespace {

bool PlatformSpecificSource(std::string_view id) {
  return id.starts_with("docker-image://") || id.starts_with("oci-layout://");
}

class SourceOutput;

class SourceOp : public Vertex {
 public:
  SourceOp(std::string id, std::map<std::string, std::string> attrs, Constraints c,
           absl::Status err = absl::OkStatus())
      : id_(std::move(id)),
        attrs_(std::move(attrs)),
        constraints_(std::move(c)),
        err_(std::move(err)) {}

  std::vector<std::shared_ptr<const Output>> Inputs() const override { return {}; }

  absl::StatusOr<MarshaledVertex> Marshal(MarshalContext& ctx) const override {
    if (!err_.ok()) return err_;
    if (id_.empty()) return absl::InvalidArgumentError("source identifier can't be empty");
    std::map<std::string, std::string> attrs = attrs_;
    Constraints own = constraints_;
    if (id_.starts_with("local://") && !attrs.count(kAttrLocalSessionID)) {
      std::string uid =
          own.local_unique_id.empty() ? ctx.constraints().local_unique_id : own.local_unique_id;
      attrs[kAttrLocalUniqueID] = uid;
      own.AddCap(kCapSourceLocalUnique);
    }
    MarshaledConstraints mc = MarshalConstraints(ctx.constraints(), own);
    pb::SourceOp* src = mc.op.mutable_source();
    src->set_identifier(id_);
    for (const auto& [k, v] : attrs) (*src->mutable_attrs())[k] = v;
    if (!PlatformSpecificSource(id_)) mc.op.clear_platform();
    MarshaledVertex mv;
    mv.bytes = SerializeDeterministic(mc.op);
    mv.digest = OpDigest(mv.bytes);
    mv.metadata = std::move(mc.metadata);
    mv.locations = constraints_.source_locations;
    return mv;
  }

  const Constraints& constraints() const { return constraints_; }

 private:
  std::string id_;
  std::map<std::string, std::string> attrs_;
  Constraints constraints_;
  absl::Status err_;
};

// A source's only output; carries the platform the source was given.
class SourceOutput : public Output {
 public:
  explicit SourceOutput(std::shared_ptr<const SourceOp> op) : op_(std::move(op)) {}
  const Vertex* vertex() const override { return op_.get(); }
  absl::StatusOr<int64_t> index() const override { return 0; }
  std::optional<oci::Platform> platform() const override { return op_->constraints().platform; }

 private:
  std::shared_ptr<const SourceOp> op_;
};

State NewSource(std::string id, std::map<std::string, std::string> attrs, Constraints c,
                absl::Status err = absl::OkStatus()) {
  auto op = std::make_shared<const SourceOp>(std::move(id), std::move(attrs), std::move(c),
                                             std::move(err));
  return State::FromOutput(std::make_shared<SourceOutput>(std::move(op)));
}

// gitutil.ParseProtocol.
enum class GitProtocol { kHttp, kHttps, kSsh, kGit, kUnknown };

bool IsImplicitSshTransport(std::string_view s) {
  // ^[a-zA-Z0-9-_]+@[a-zA-Z0-9-.]+:.*$
  size_t at = s.find('@');
  if (at == std::string_view::npos || at == 0) return false;
  for (char c : s.substr(0, at)) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  }
  size_t colon = s.find(':', at + 1);
  if (colon == std::string_view::npos || colon == at + 1) return false;
  for (char c : s.substr(at + 1, colon - at - 1)) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.')) return false;
  }
  return s.find('\n') == std::string_view::npos;  // '.' in Go's regexp does not match newline
}

std::pair<std::string, GitProtocol> ParseGitProtocol(std::string remote) {
  GitProtocol proto = GitProtocol::kUnknown;
  static const std::pair<std::string_view, GitProtocol> kPrefixes[] = {
      {"http://", GitProtocol::kHttp},
      {"https://", GitProtocol::kHttps},
      {"git://", GitProtocol::kGit},
      {"ssh://", GitProtocol::kSsh},
  };
  for (const auto& [prefix, p] : kPrefixes) {
    if (std::string_view(remote).starts_with(prefix)) {
      remote = remote.substr(prefix.size());
      proto = p;
      break;
    }
  }
  if (proto == GitProtocol::kUnknown && IsImplicitSshTransport(remote)) proto = GitProtocol::kSsh;
  if (proto == GitProtocol::kSsh) {
    if (size_t at = remote.find('@'); at != std::string::npos) remote = remote.substr(at + 1);
  }
  return {remote, proto};
}

}  // namespace

State Source(std::string identifier, std::map<std::string, std::string> attrs,
             const Constraints& constraints) {
  return NewSource(std::move(identifier), std::move(attrs), constraints);
}

State Scratch() { return State(); }

State Image(std::string_view ref, const ImageInfo& info) {
  std::string text(ref);
  absl::Status err;
  if (absl::StatusOr<ImageReference> r = ParseNormalizedReference(ref); r.ok()) {
    text = r->WithDefaultTag().String();
  } else {
    err = r.status();
  }
  Constraints c = info.constraints;
  c.AddCap(kCapSourceImage);
  std::map<std::string, std::string> attrs;
  if (info.resolve_mode != ResolveMode::kDefault) {
    attrs[kAttrImageResolveMode] = std::string(ResolveModeString(info.resolve_mode));
    // Only the security-relevant mode requires the cap.
    if (info.resolve_mode == ResolveMode::kPull) c.AddCap(kCapSourceImageResolveMode);
  }
  if (!info.record_type.empty()) attrs[kAttrImageRecordType] = info.record_type;
  if (info.layer_limit) {
    attrs[kAttrImageLayerLimit] = StrCat(*info.layer_limit);
    c.AddCap(kCapSourceImageLayerLimit);
  }
  if (!info.config_json) {
    return NewSource(StrCat("docker-image://", text), std::move(attrs), std::move(c), err);
  }
  // Validate the config first so a bad blob fails the marshal like a bad reference does.
  absl::StatusOr<State> probe = State().WithImageConfig(*info.config_json);
  if (!probe.ok() && err.ok()) err = probe.status();
  State st = NewSource(StrCat("docker-image://", text), std::move(attrs), std::move(c), err);
  absl::StatusOr<State> configured = st.WithImageConfig(*info.config_json);
  return configured.ok() ? *configured : st;
}

State Local(std::string_view name, const LocalInfo& info) {
  Constraints c = info.constraints;
  std::map<std::string, std::string> attrs;
  if (!info.session_id.empty()) {
    attrs[kAttrLocalSessionID] = info.session_id;
    c.AddCap(kCapSourceLocalSessionID);
  }
  if (!info.include_patterns.empty()) {
    attrs[kAttrIncludePatterns] = GoJsonStringArray(info.include_patterns);
    c.AddCap(kCapSourceLocalIncludePatterns);
  }
  if (!info.follow_paths.empty()) {
    attrs[kAttrFollowPaths] = GoJsonStringArray(info.follow_paths);
    c.AddCap(kCapSourceLocalFollowPaths);
  }
  if (!info.exclude_patterns.empty()) {
    attrs[kAttrExcludePatterns] = GoJsonStringArray(info.exclude_patterns);
    c.AddCap(kCapSourceLocalExcludePatterns);
  }
  if (!info.shared_key_hint.empty()) {
    attrs[kAttrSharedKeyHint] = info.shared_key_hint;
    c.AddCap(kCapSourceLocalSharedKeyHint);
  }
  if (info.differ && !info.differ->type.empty()) {
    attrs[kAttrLocalDiffer] = info.differ->type;
    if (info.differ->required) c.AddCap(kCapSourceLocalDiffer);
  }
  c.AddCap(kCapSourceLocal);
  return NewSource(StrCat("local://", name), std::move(attrs), std::move(c));
}

State Git(std::string_view remote_in, std::string_view ref, const GitInfo& info) {
  std::string url(remote_in.substr(0, remote_in.find('#')));
  auto [remote, proto] = ParseGitProtocol(std::string(remote_in));
  std::string ssh_host;
  if (proto == GitProtocol::kSsh) {
    if (size_t colon = remote.find(':'); colon != std::string::npos) {
      ssh_host = remote.substr(0, colon);
      // Keep the identifier in the same shape as the http(s) one.
      remote = StrCat(remote.substr(0, colon), "/", remote.substr(colon + 1));
    }
  }
  if (proto == GitProtocol::kUnknown) url = StrCat("https://", url);
  std::string id = remote;
  if (!ref.empty()) StrAppend(&id, "#", ref);

  Constraints c = info.constraints;
  std::map<std::string, std::string> attrs;
  if (info.keep_git_dir) {
    attrs[kAttrKeepGitDir] = "true";
    c.AddCap(kCapSourceGitKeepDir);
  }
  if (!url.empty()) {
    attrs[kAttrFullRemoteURL] = url;
    c.AddCap(kCapSourceGitFullURL);
  }
  std::string token = info.auth_token_secret.value_or("GIT_AUTH_TOKEN");
  if (!token.empty()) {
    attrs[kAttrAuthTokenSecret] = token;
    if (info.auth_token_secret || info.auth_header_secret) c.AddCap(kCapSourceGitHTTPAuth);
  }
  std::string header = info.auth_header_secret.value_or("GIT_AUTH_HEADER");
  if (!header.empty()) {
    attrs[kAttrAuthHeaderSecret] = header;
    if (info.auth_token_secret || info.auth_header_secret) c.AddCap(kCapSourceGitHTTPAuth);
  }
  if (proto == GitProtocol::kSsh) {
    std::string known;
    for (const std::string& key : info.known_ssh_hosts) {
      std::string_view k = key;
      if (k.ends_with('\n')) k.remove_suffix(1);
      StrAppend(&known, k, "\n");
    }
    if (!known.empty()) attrs[kAttrKnownSSHHosts] = known;
    c.AddCap(kCapSourceGitKnownSSHHosts);
    attrs[kAttrMountSSHSock] = info.mount_ssh_sock.empty() ? "default" : info.mount_ssh_sock;
    c.AddCap(kCapSourceGitMountSSHSock);
  }
  c.AddCap(kCapSourceGit);
  return NewSource(StrCat("git://", id), std::move(attrs), std::move(c));
}

State Http(std::string_view url, const HttpInfo& info) {
  Constraints c = info.constraints;
  std::map<std::string, std::string> attrs;
  if (!info.checksum.empty()) {
    attrs[kAttrHTTPChecksum] = info.checksum;
    c.AddCap(kCapSourceHTTPChecksum);
  }
  if (!info.filename.empty()) attrs[kAttrHTTPFilename] = info.filename;
  uint32_t perm = info.perm & 0777;
  if (perm != 0) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "0%o", perm);
    attrs[kAttrHTTPPerm] = buf;
    c.AddCap(kCapSourceHTTPPerm);
  }
  if (info.uid != 0) {
    attrs[kAttrHTTPUID] = StrCat(info.uid);
    c.AddCap(kCapSourceHTTPUIDGID);
  }
  if (info.gid != 0) {
    attrs[kAttrHTTPGID] = StrCat(info.gid);
    c.AddCap(kCapSourceHTTPUIDGID);
  }
  c.AddCap(kCapSourceHTTP);
  return NewSource(std::string(url), std::move(attrs), std::move(c));
}

State OCILayout(std::string_view ref, const OCILayoutInfo& info) {
  Constraints c = info.constraints;
  std::map<std::string, std::string> attrs;
  if (!info.session_id.empty()) attrs[kAttrOCILayoutSessionID] = info.session_id;
  if (!info.store_id.empty()) attrs[kAttrOCILayoutStoreID] = info.store_id;
  if (info.layer_limit) attrs[kAttrOCILayoutLayerLimit] = StrCat(*info.layer_limit);
  c.AddCap(kCapSourceOCILayout);
  return NewSource(StrCat("oci-layout://", ref), std::move(attrs), std::move(c));
}

}  // namespace kiln::llb
