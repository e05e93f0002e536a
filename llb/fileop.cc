#include "llb/fileop.h"

#include <map>
#include <variant>

#include "base/go_compat.h"
#include "base/status.h"
#include "base/strings.h"
#include "llb/caps.h"
#include "llb/definition.h"

namespace kiln::llb {
namespace {

struct MkdirAction {
  std::string path;
  uint32_t mode;
  MkdirInfo info;
};
struct MkfileAction {
  std::string path;
  uint32_t mode;
  std::string data;
  MkfileInfo info;
};
struct RmAction {
  std::string path;
  RmInfo info;
};
struct CopyAction {
  std::shared_ptr<const State> src_state;             // copy from a state, or
  std::shared_ptr<const FileAction::Node> src_chain;  // from a chain bound with WithState
  std::string src;
  std::string dest;
  CopyInfo info;
};
struct SymlinkAction {
  std::string oldpath;
  std::string newpath;
  SymlinkInfo info;
};

}  // namespace

struct FileAction::Node {
  std::shared_ptr<const Node> prev;
  std::shared_ptr<const State> state;  // set when the chain is bound (State::File, WithState)
  std::variant<MkdirAction, MkfileAction, RmAction, CopyAction, SymlinkAction> action;
};

namespace {

using Node = FileAction::Node;

FileAction Append(const std::shared_ptr<const Node>& prev, decltype(Node::action) action) {
  auto n = std::make_shared<Node>();
  n->prev = prev;
  n->action = std::move(action);
  return FileAction(std::move(n));
}

// Go's FileAction.bind: a copy of the chain with every action bound to `state`.
std::shared_ptr<const Node> Bind(const std::shared_ptr<const Node>& last, const State& state) {
  if (!last) return nullptr;
  std::vector<const Node*> chain;
  for (const Node* n = last.get(); n != nullptr; n = n->prev.get()) chain.push_back(n);
  auto bound_state = std::make_shared<const State>(state);
  std::shared_ptr<const Node> prev;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    auto n = std::make_shared<Node>(**it);
    n->prev = prev;
    n->state = bound_state;
    prev = std::move(n);
  }
  return prev;
}

// Go's normalizePath.
std::string NormalizePath(std::string_view parent, std::string_view p, bool keep_slash) {
  std::string out = CleanPath(p);
  if (!PathIsAbs(out)) out = PathJoin({"/", parent, out});
  if (keep_slash) {
    if (p.ends_with("/") && !std::string_view(out).ends_with("/")) {
      out += "/";
    } else if (p.ends_with("/.")) {
      if (out != "/") out += "/";
      out += ".";
    }
  }
  return out;
}

int64_t MarshalTime(const std::optional<int64_t>& t) { return t ? *t : -1; }

void MarshalUser(const std::optional<UserOpt>& u, int64_t base, pb::UserOpt* out) {
  if (!u->name.empty()) {
    out->mutable_byname()->set_name(u->name);
    out->mutable_byname()->set_input(base);
  } else {
    out->set_byid(u->uid);
  }
}

void MarshalChown(const std::optional<ChownOpt>& c, int64_t base,
                  std::function<pb::ChownOpt*()> mutable_owner) {
  if (!c) return;
  pb::ChownOpt* owner = mutable_owner();
  if (c->user) MarshalUser(c->user, base, owner->mutable_user());
  if (c->group) MarshalUser(c->group, base, owner->mutable_group());
}

// Go's fileActionState.
struct ActionState {
  const Node* node;
  int64_t base = -1;
  int64_t input = -1;
  std::optional<size_t> input_action;  // the input is the result of this earlier action
  int64_t input2 = -1;
  std::optional<size_t> input2_action;
};

// Go's marshalState.add: actions in dependency order; `add_input` maps an output to an op input
// index.
template <typename AddInput>
class ActionCollector {
 public:
  explicit ActionCollector(AddInput add_input) : add_input_(std::move(add_input)) {}

  absl::StatusOr<size_t> Add(const Node* n) {
    if (auto it = visited_.find(n); it != visited_.end()) return it->second;
    std::optional<size_t> prev;
    if (n->prev) {
      KILN_ASSIGN_OR_RETURN(prev, Add(n->prev.get()));
    }
    ActionState st{n};
    if (n->state && n->state->output()) {
      KILN_ASSIGN_OR_RETURN(st.base, add_input_(n->state->output()));
    }
    if (!prev) {
      st.input = st.base;
    } else {
      st.input_action = *prev;
    }
    if (const auto* copy = std::get_if<CopyAction>(&n->action)) {
      if (copy->src_state) {
        if (copy->src_state->output()) {
          KILN_ASSIGN_OR_RETURN(st.input2, add_input_(copy->src_state->output()));
        }
      } else if (copy->src_chain) {
        KILN_ASSIGN_OR_RETURN(size_t src, Add(copy->src_chain.get()));
        st.input2_action = src;
      } else {
        return absl::InvalidArgumentError("invalid empty source for copy");
      }
    }
    visited_.emplace(n, actions_.size());
    actions_.push_back(st);
    return actions_.size() - 1;
  }

  const std::vector<ActionState>& actions() const { return actions_; }

 private:
  AddInput add_input_;
  std::map<const Node*, size_t> visited_;
  std::vector<ActionState> actions_;
};

std::string CopySourcePath(const CopyAction& a) {
  std::string p = CleanPath(a.src);
  if (!PathIsAbs(p)) {
    if (a.src_state) {
      p = PathJoin({"/", a.src_state->GetDir(), p});
    } else if (a.src_chain && a.src_chain->state) {
      p = PathJoin({"/", a.src_chain->state->GetDir(), p});
    }
  }
  return p;
}

void ToProtoAction(const Node& n, std::string_view parent, int64_t base, pb::FileAction* out) {
  if (const auto* a = std::get_if<MkdirAction>(&n.action)) {
    pb::FileActionMkDir* m = out->mutable_mkdir();
    m->set_path(NormalizePath(parent, a->path, false));
    m->set_mode(static_cast<int32_t>(a->mode & 0777));
    m->set_makeparents(a->info.make_parents);
    MarshalChown(a->info.chown, base, [m] { return m->mutable_owner(); });
    m->set_timestamp(MarshalTime(a->info.created_time_ns));
  } else if (const auto* a = std::get_if<MkfileAction>(&n.action)) {
    pb::FileActionMkFile* m = out->mutable_mkfile();
    m->set_path(NormalizePath(parent, a->path, false));
    m->set_mode(static_cast<int32_t>(a->mode & 0777));
    m->set_data(a->data);
    MarshalChown(a->info.chown, base, [m] { return m->mutable_owner(); });
    m->set_timestamp(MarshalTime(a->info.created_time_ns));
  } else if (const auto* a = std::get_if<RmAction>(&n.action)) {
    pb::FileActionRm* m = out->mutable_rm();
    m->set_path(NormalizePath(parent, a->path, false));
    m->set_allownotfound(a->info.allow_not_found);
    m->set_allowwildcard(a->info.allow_wildcard);
  } else if (const auto* a = std::get_if<CopyAction>(&n.action)) {
    pb::FileActionCopy* m = out->mutable_copy();
    m->set_src(CopySourcePath(*a));
    m->set_dest(NormalizePath(parent, a->dest, true));
    MarshalChown(a->info.chown, base, [m] { return m->mutable_owner(); });
    for (const std::string& p : a->info.include_patterns) m->add_include_patterns(p);
    for (const std::string& p : a->info.exclude_patterns) m->add_exclude_patterns(p);
    m->set_allowwildcard(a->info.allow_wildcard);
    m->set_allowemptywildcard(a->info.allow_empty_wildcard);
    m->set_followsymlink(a->info.follow_symlinks);
    m->set_dircopycontents(a->info.copy_dir_contents_only);
    m->set_attemptunpackdockercompatibility(a->info.attempt_unpack);
    m->set_createdestpath(a->info.create_dest_path);
    m->set_timestamp(MarshalTime(a->info.created_time_ns));
    for (const std::string& p : a->info.required_paths) m->add_required_paths(p);
    if (!a->info.mode_str.empty()) {
      m->set_modestr(a->info.mode_str);  // and mode 0, as Go leaves it
    } else {
      m->set_mode(a->info.mode ? static_cast<int32_t>(*a->info.mode) : -1);
    }
    m->set_alwaysreplaceexistingdestpaths(a->info.always_replace_existing_dest_paths);
  } else if (const auto* a = std::get_if<SymlinkAction>(&n.action)) {
    pb::FileActionSymlink* m = out->mutable_symlink();
    m->set_oldpath(a->oldpath);
    m->set_newpath(a->newpath);
    MarshalChown(a->info.chown, base, [m] { return m->mutable_owner(); });
    m->set_timestamp(MarshalTime(a->info.created_time_ns));
  }
}

class FileOpOutput;

class FileOp : public Vertex {
 public:
  FileOp(std::shared_ptr<const Node> action, Constraints c)
      : action_(std::move(action)), constraints_(std::move(c)) {}

  std::vector<std::shared_ptr<const Output>> Inputs() const override {
    std::vector<std::shared_ptr<const Output>> outs;
    if (!action_) return outs;
    ActionCollector collector(
        [&outs](const std::shared_ptr<const Output>& o) -> absl::StatusOr<int64_t> {
          outs.push_back(o);
          return static_cast<int64_t>(outs.size() - 1);
        });
    (void)collector.Add(action_.get());  // only fails for a copy without source
    return outs;
  }

  absl::StatusOr<MarshaledVertex> Marshal(MarshalContext& ctx) const override {
    if (!action_) return absl::InvalidArgumentError("action is required");
    Constraints own = constraints_;
    own.AddCap(kCapFileBase);
    if (!own.platform && action_->state) own.platform = action_->state->GetPlatform();
    MarshaledConstraints mc = MarshalConstraints(ctx.constraints(), own);

    ActionCollector collector(
        [&](const std::shared_ptr<const Output>& o) -> absl::StatusOr<int64_t> {
          KILN_ASSIGN_OR_RETURN(pb::Input in, ctx.ToInput(*o));
          for (int i = 0; i < mc.op.inputs_size(); ++i) {
            if (mc.op.inputs(i).digest() == in.digest() && mc.op.inputs(i).index() == in.index())
              return i;
          }
          *mc.op.add_inputs() = std::move(in);
          return static_cast<int64_t>(mc.op.inputs_size() - 1);
        });
    KILN_RETURN_IF_ERROR(collector.Add(action_.get()).status());

    const int64_t num_inputs = mc.op.inputs_size();
    const auto& actions = collector.actions();
    pb::FileOp* file = mc.op.mutable_file();
    for (size_t i = 0; i < actions.size(); ++i) {
      const ActionState& st = actions[i];
      pb::FileAction* fa = file->add_actions();
      fa->set_input(st.input_action ? num_inputs + static_cast<int64_t>(*st.input_action)
                                    : st.input);
      fa->set_secondaryinput(st.input2_action ? num_inputs + static_cast<int64_t>(*st.input2_action)
                                              : st.input2);
      fa->set_output(i + 1 == actions.size() ? 0 : -1);
      std::string parent = st.node->state ? st.node->state->GetDir() : std::string();
      ToProtoAction(*st.node, parent, st.base, fa);
    }

    MarshaledVertex mv;
    mv.bytes = SerializeDeterministic(mc.op);
    mv.digest = OpDigest(mv.bytes);
    mv.metadata = std::move(mc.metadata);
    mv.locations = constraints_.source_locations;
    return mv;
  }

 private:
  std::shared_ptr<const Node> action_;
  Constraints constraints_;
};

class FileOpOutput : public Output {
 public:
  explicit FileOpOutput(std::shared_ptr<const FileOp> op) : op_(std::move(op)) {}
  const Vertex* vertex() const override { return op_.get(); }
  absl::StatusOr<int64_t> index() const override { return 0; }

 private:
  std::shared_ptr<const FileOp> op_;
};

// strconv.ParseInt(s, 10, 32), with "root" meaning 0.
std::optional<int64_t> ParseUID(std::string_view s) {
  if (s == "root") return 0;
  std::string_view digits = s;
  bool neg = false;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
    neg = digits[0] == '-';
    digits.remove_prefix(1);
  }
  if (digits.empty() || digits.size() > 11) return std::nullopt;
  int64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (neg) v = -v;
  if (v < INT32_MIN || v > INT32_MAX) return std::nullopt;
  return v;
}

UserOpt ParseUserPart(std::string_view part) {
  UserOpt u;
  if (auto id = ParseUID(part)) {
    u.uid = static_cast<uint32_t>(*id);
  } else {
    u.name = std::string(part);
  }
  return u;
}

}  // namespace

ChownOpt ChownFromSpec(std::string_view spec) {
  ChownOpt c;
  size_t colon = spec.find(':');
  c.user = ParseUserPart(spec.substr(0, colon));
  if (colon != std::string_view::npos) c.group = ParseUserPart(spec.substr(colon + 1));
  return c;
}

ChownOpt ChownFromIds(uint32_t uid, uint32_t gid) {
  ChownOpt c;
  c.user = UserOpt{uid, ""};
  c.group = UserOpt{gid, ""};
  return c;
}

FileAction FileAction::Mkdir(std::string_view path, uint32_t mode, const MkdirInfo& info) const {
  return Append(node_, MkdirAction{std::string(path), mode, info});
}

FileAction FileAction::Mkfile(std::string_view path, uint32_t mode, std::string data,
                              const MkfileInfo& info) const {
  return Append(node_, MkfileAction{std::string(path), mode, std::move(data), info});
}

FileAction FileAction::Rm(std::string_view path, const RmInfo& info) const {
  return Append(node_, RmAction{std::string(path), info});
}

FileAction FileAction::Copy(const State& source, std::string_view src_path,
                            std::string_view dest_path, const CopyInfo& info) const {
  return Append(node_, CopyAction{std::make_shared<const State>(source), nullptr,
                                  std::string(src_path), std::string(dest_path), info});
}

FileAction FileAction::Copy(const FileActionWithState& source, std::string_view src_path,
                            std::string_view dest_path, const CopyInfo& info) const {
  return Append(node_, CopyAction{nullptr, source.action().node(), std::string(src_path),
                                  std::string(dest_path), info});
}

FileAction FileAction::Symlink(std::string_view oldpath, std::string_view newpath,
                               const SymlinkInfo& info) const {
  return Append(node_, SymlinkAction{std::string(oldpath), std::string(newpath), info});
}

FileActionWithState FileAction::WithState(const State& state) const {
  return FileActionWithState(FileAction(Bind(node_, state)));
}

FileAction Mkdir(std::string_view path, uint32_t mode, const MkdirInfo& info) {
  return FileAction().Mkdir(path, mode, info);
}
FileAction Mkfile(std::string_view path, uint32_t mode, std::string data, const MkfileInfo& info) {
  return FileAction().Mkfile(path, mode, std::move(data), info);
}
FileAction Rm(std::string_view path, const RmInfo& info) { return FileAction().Rm(path, info); }
FileAction Copy(const State& source, std::string_view src_path, std::string_view dest_path,
                const CopyInfo& info) {
  return FileAction().Copy(source, src_path, dest_path, info);
}
FileAction Copy(const FileActionWithState& source, std::string_view src_path,
                std::string_view dest_path, const CopyInfo& info) {
  return FileAction().Copy(source, src_path, dest_path, info);
}
FileAction Symlink(std::string_view oldpath, std::string_view newpath, const SymlinkInfo& info) {
  return FileAction().Symlink(oldpath, newpath, info);
}

State State::File(const FileAction& action, const Constraints& constraints) const {
  auto op = std::make_shared<const FileOp>(Bind(action.node(), *this), constraints);
  return WithOutput(std::make_shared<FileOpOutput>(std::move(op)));
}

}  // namespace kiln::llb
