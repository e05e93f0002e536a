// COPY and ADD (BuildKit v0.11.6 dispatchCopy; --parents, --exclude, --checksum, --unpack,
// --keep-git-dir, ADD <git> and symbolic --chmod as BuildKit HEAD).
#include "absl/strings/str_cat.h"
#include "base/go_compat.h"
#include "base/status.h"
#include "base/strings.h"
#include "frontends/dockerfile/convert_internal.h"
#include "frontends/dockerfile/go_compat.h"

namespace kiln::frontends::dockerfile::internal {
namespace {

// HEAD's containsWildcards.
bool ContainsWildcards(std::string_view name) {
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '*' || name[i] == '?' || name[i] == '[') return true;
    if (name[i] == '\\') ++i;
  }
  return false;
}

// A symbolic mode as chmod(1) and github.com/tonistiigi/dchapes-mode accept it:
// [ugoa]*([-+=]([rwxXst]*|[ugo]))+ joined by ",".
bool ValidSymbolicMode(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  while (true) {
    while (i < s.size() && std::string_view("ugoa").find(s[i]) != std::string_view::npos) ++i;
    bool any_op = false;
    while (i < s.size() && (s[i] == '-' || s[i] == '+' || s[i] == '=')) {
      any_op = true;
      ++i;
      if (i < s.size() && std::string_view("ugo").find(s[i]) != std::string_view::npos) {
        ++i;
        continue;
      }
      while (i < s.size() && std::string_view("rwxXst").find(s[i]) != std::string_view::npos) ++i;
    }
    if (!any_op) return false;
    if (i == s.size()) return true;
    if (s[i] != ',') return false;
    ++i;
  }
}

struct Chmod {
  std::optional<uint32_t> mode;
  std::string mode_str;
};

absl::StatusOr<Chmod> ParseChmod(const std::string& chmod) {
  Chmod out;
  if (chmod.empty()) return out;
  const std::string non_octal = StrCat("invalid chmod parameter: '", chmod,
                                       "'. it should be octal string and between 0 and 07777");
  std::string err;
  std::optional<uint64_t> p = go::ParseUint(chmod, 8, 32, &err);
  if (p) {
    if (*p > 07777) return absl::InvalidArgumentError(non_octal);
    out.mode = static_cast<uint32_t>(*p);
    return out;
  }
  if (!chmod.empty() && chmod[0] >= '0' && chmod[0] <= '9') {
    return absl::InvalidArgumentError(non_octal);
  }
  if (!ValidSymbolicMode(chmod)) {
    return absl::InvalidArgumentError(StrCat("invalid chmod parameter: '", chmod, "'"));
  }
  out.mode_str = chmod;
  return out;
}

bool IsDigest(std::string_view s) {
  absl::StatusOr<Digest> d = Digest::Parse(std::string(s));
  return d.ok();
}

}  // namespace

absl::Status DispatchCopy(DispatchState& d, const CopyConfig& cfg, DispatchOpt& opt) {
  const SourcesAndDest& params = *cfg.params;
  std::string pp = params.dest_path;
  if (!PathIsAbs(pp)) pp = PathJoin({d.state.GetDir(), pp});
  std::string dest = PathJoin({"/", pp});
  if (params.dest_path == "." || params.dest_path.empty() || params.dest_path.back() == '/') {
    dest += "/";
  }

  std::optional<llb::ChownOpt> chown;
  if (!cfg.chown.empty()) chown = llb::ChownFromSpec(cfg.chown);
  KILN_ASSIGN_OR_RETURN(Chmod chmod, ParseChmod(cfg.chmod));

  if (!cfg.checksum.empty()) {
    if (!cfg.is_add) return absl::InvalidArgumentError("checksum can't be specified for COPY");
    if (params.source_paths.size() != 1) {
      return absl::InvalidArgumentError("checksum can't be specified for multiple sources");
    }
    if (!IsHttpSource(params.source_paths[0])) {
      return absl::InvalidArgumentError("checksum requires HTTP(S) sources");
    }
  }

  std::string commit = cfg.is_add ? "ADD" : "COPY";
  // --parents exists only in BuildKit HEAD, whose history text names it (v0.11.6 names no
  // flags, and neither do we for the flags it has).
  if (cfg.parents) commit += " --parents";
  auto base_info = [&]() {
    llb::CopyInfo info;
    info.mode = chmod.mode;
    info.mode_str = chmod.mode_str;
    info.create_dest_path = true;
    info.chown = chown;
    info.exclude_patterns = cfg.exclude_patterns;
    return info;
  };

  llb::FileAction a;
  auto add_copy = [&](const llb::State& src, const std::string& path, const llb::CopyInfo& info) {
    a = a.empty() ? llb::Copy(src, path, dest, info) : a.Copy(src, path, dest, info);
  };

  for (std::string src : params.source_paths) {
    StrAppend(&commit, " ", src);
    std::optional<GitRef> git = ParseGitRef(src);
    if (git && !git->indistinguishable_from_local) {
      if (!cfg.is_add) return absl::InvalidArgumentError("source can't be a git ref for COPY");
      std::string commit_ref = git->commit;
      if (!git->subdir.empty()) StrAppend(&commit_ref, ":", git->subdir);
      llb::GitInfo gi;
      gi.keep_git_dir = cfg.keep_git_dir.value_or(false);
      llb::State st = llb::Git(git->remote, commit_ref, gi);
      add_copy(st, "/", base_info());
    } else if (IsHttpSource(src)) {
      if (!cfg.is_add) return absl::InvalidArgumentError("source can't be a URL for COPY");
      const std::string f = HttpSourceFilename(src);
      if (!cfg.checksum.empty() && !IsDigest(cfg.checksum)) {
        return absl::InvalidArgumentError(StrCat("invalid checksum digest format: ", cfg.checksum));
      }
      // BuildKit describes the http source with a struct that is not a Stringer: "".
      llb::State st =
          llb::Http(src, {.checksum = cfg.checksum, .filename = f, .constraints = DfCmd("")});
      llb::CopyInfo info = base_info();
      info.attempt_unpack = cfg.unpack.value_or(false);
      add_copy(st, f, info);
    } else {
      std::vector<std::string> patterns;
      std::vector<std::string> required;
      if (cfg.parents) {
        std::string pattern;
        size_t pivot = src.find("/./");
        if (pivot == std::string::npos) {
          pattern = src;
          src = "/";
        } else {
          pattern = src.substr(pivot + 3);
          src = src.substr(0, pivot);
        }
        pattern = PathJoin({"/", pattern});
        patterns = {pattern.substr(1)};
        if (!ContainsWildcards(src) && !ContainsWildcards(pattern)) {
          required = {PathJoin({"/", src, pattern})};
        }
      }
      llb::CopyInfo info = base_info();
      info.follow_symlinks = true;
      info.copy_dir_contents_only = true;
      info.include_patterns = patterns;
      info.attempt_unpack = cfg.unpack.value_or(cfg.is_add);
      info.allow_wildcard = true;
      info.allow_empty_wildcard = true;
      info.required_paths = std::move(required);
      add_copy(cfg.source, PathJoin({"/", src}), info);
    }
  }

  for (const SourceContent& src : params.source_contents) {
    StrAppend(&commit, " <<", src.path);
    llb::State st = llb::Scratch().File(
        llb::Mkfile(src.path, 0664, src.data),
        llb::Constraints().WithCustomName("[internal] preparing inline document"));
    add_copy(st, src.path, base_info());
  }
  StrAppend(&commit, " ", params.dest_path);

  const oci::Platform platform = d.platform ? *d.platform : opt.target_platform;
  const std::vector<std::string> env = d.state.Env();
  const std::string name = UppercaseCmd(ProcessCmdEnv(opt.shlex, cfg.code, env));
  llb::Constraints file_opt;
  file_opt.WithCustomName(PrefixCommand(d, name, d.prefix_platform, platform, env));
  file_opt.WithLocation(opt.source_map, ToRanges(cfg.location));
  if (d.ignore_cache) file_opt.WithIgnoreCache();

  if (a.empty()) return absl::InvalidArgumentError("no source files were specified");

  if (opt.CapSupported(llb::kCapMergeOp) && cfg.link && cfg.chmod.empty()) {
    const std::string pg_id = opt.new_id();
    d.cmd_index--;  // PrefixCommand above counted this instruction already
    const std::string pg_name = PrefixCommand(d, name, d.prefix_platform, platform, env);
    // BuildKit v0.11.6 copies its file options into a nil slice (a no-op): the copy gets only
    // the progress group, the merge only the progress group and the LINK name.
    llb::Constraints copy_opt;
    copy_opt.WithProgressGroup(pg_id, pg_name, true);
    d.cmd_index--;
    llb::Constraints merge_opt;
    merge_opt.WithProgressGroup(pg_id, pg_name, false);
    merge_opt.WithCustomName(
        PrefixCommand(d, StrCat("LINK ", name), d.prefix_platform, platform, env));
    llb::State layer = llb::Scratch().File(a, copy_opt);
    d.state = d.state.WithOutput(llb::Merge({d.state, layer}, merge_opt).output());
  } else {
    d.state = d.state.File(a, file_opt);
  }
  CommitToHistory(d.image, commit, true, true, opt.epoch);
  return absl::OkStatus();
}

}  // namespace kiln::frontends::dockerfile::internal
