#include "llb/validate.h"

#include <set>
#include <string>
#include <vector>

#include "base/go_compat.h"
#include "base/status.h"
#include "base/strings.h"
#include "llb/caps.h"

namespace kiln::llb {
namespace {

template <typename... Args>
absl::Status OpError(const ParsedOp& op, const Args&... what) {
  return absl::InvalidArgumentError(StrCat("invalid LLB: op ", op.digest.str(), ": ", what...));
}

// Checks that an input index is -1 (scratch) or names one of the op's inputs.
bool ValidInputOrScratch(int64_t index, const pb::Op& op) {
  return index == -1 || (index >= 0 && index < op.inputs_size());
}

bool ValidInput(int64_t index, const pb::Op& op) { return index >= 0 && index < op.inputs_size(); }

absl::Status ValidateMount(const ParsedOp& p, int i, const pb::Mount& m) {
  const pb::Op& op = p.op;
  if (!PathIsAbs(m.dest())) {
    return OpError(p, "mount ", i, ": destination ", Quote(m.dest()), " is not an absolute path");
  }
  if (!ValidInputOrScratch(m.input(), op)) {
    return OpError(p, "mount ", i, " (", m.dest(), "): input index ", m.input(),
                   " is not -1 or one of the op's ", op.inputs_size(), " inputs");
  }
  if (m.output() < -1) {
    return OpError(p, "mount ", i, " (", m.dest(), "): invalid output index ", m.output());
  }
  switch (m.mounttype()) {
    case pb::BIND:
    case pb::TMPFS:
      break;
    case pb::CACHE:
      if (!m.has_cacheopt())
        return OpError(p, "mount ", i, " (", m.dest(), "): cache mount without cacheOpt");
      if (!pb::CacheSharingOpt_IsValid(m.cacheopt().sharing())) {
        return OpError(p, "mount ", i, " (", m.dest(), "): unknown cache sharing mode ",
                       static_cast<int>(m.cacheopt().sharing()));
      }
      break;
    case pb::SECRET:
      if (!m.has_secretopt())
        return OpError(p, "mount ", i, " (", m.dest(), "): secret mount without secretOpt");
      break;
    case pb::SSH:
      if (!m.has_sshopt())
        return OpError(p, "mount ", i, " (", m.dest(), "): ssh mount without SSHOpt");
      break;
    default:
      return OpError(p, "mount ", i, " (", m.dest(), "): unknown mount type ",
                     static_cast<int>(m.mounttype()));
  }
  if (!pb::MountContentCache_IsValid(m.contentcache())) {
    return OpError(p, "mount ", i, " (", m.dest(), "): unknown content cache mode ",
                   static_cast<int>(m.contentcache()));
  }
  return absl::OkStatus();
}

absl::Status ValidateExec(const ParsedOp& p) {
  const pb::ExecOp& e = p.op.exec();
  if (!e.has_meta()) return OpError(p, "exec op with no meta");
  if (e.meta().args_size() == 0) return OpError(p, "exec op with no args");
  if (e.mounts_size() == 0) return OpError(p, "exec op with no mounts");
  bool has_root = false;
  int64_t next_output = 0;
  for (int i = 0; i < e.mounts_size(); ++i) {
    const pb::Mount& m = e.mounts(i);
    KILN_RETURN_IF_ERROR(ValidateMount(p, i, m));
    if (m.dest() == kRootMount) has_root = true;
    if (MountProducesOutput(m)) {
      if (m.output() != next_output) {
        return OpError(p, "mount ", i, " (", m.dest(), ") has output index ", m.output(),
                       ", expected ", next_output, " (outputs are numbered 0..n-1 in mount order)");
      }
      ++next_output;
    }
  }
  if (!has_root) return OpError(p, "exec op with no rootfs (no mount at \"/\")");
  if (!pb::NetMode_IsValid(e.network())) {
    return OpError(p, "unknown network mode ", static_cast<int>(e.network()));
  }
  if (!pb::SecurityMode_IsValid(e.security())) {
    return OpError(p, "unknown security mode ", static_cast<int>(e.security()));
  }
  for (const pb::SecretEnv& s : e.secretenv()) {
    if (s.id().empty()) return OpError(p, "secret env ", Quote(s.name()), " has no secret ID");
    if (s.name().empty())
      return OpError(p, "secret env for secret ", Quote(s.id()), " has no name");
  }
  return absl::OkStatus();
}

// FileAction.input encoding: op input i, or op inputs + N for the result of an earlier action N.
bool ValidActionInput(int64_t index, int64_t num_inputs, int64_t action_index) {
  return index >= -1 && index < num_inputs + action_index;
}

absl::Status ValidateOwner(const ParsedOp& p, int i, const pb::ChownOpt& owner, int64_t limit) {
  for (const pb::UserOpt* u : {&owner.user(), &owner.group()}) {
    if (u->user_case() != pb::UserOpt::kByName) continue;
    int64_t in = u->byname().input();
    if (in < 0 || in >= limit) {
      return OpError(p, "file action ", i, ": owner ", Quote(u->byname().name()),
                     " is looked up in input ", in, ", which does not exist");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePath(const ParsedOp& p, int i, std::string_view what, std::string_view path) {
  if (path.empty()) return OpError(p, "file action ", i, ": empty ", what);
  return absl::OkStatus();
}

absl::Status ValidateFile(const ParsedOp& p) {
  const pb::FileOp& f = p.op.file();
  if (f.actions_size() == 0) return OpError(p, "file op with no actions");
  const int64_t num_inputs = p.op.inputs_size();
  const int64_t limit = num_inputs + f.actions_size();
  std::set<int64_t> outputs;
  for (int i = 0; i < f.actions_size(); ++i) {
    const pb::FileAction& a = f.actions(i);
    if (!ValidActionInput(a.input(), num_inputs, i)) {
      return OpError(p, "file action ", i, ": input ", a.input(),
                     " is not -1, an op input or an earlier action (", num_inputs, " inputs)");
    }
    if (!ValidActionInput(a.secondaryinput(), num_inputs, i)) {
      return OpError(p, "file action ", i, ": secondary input ", a.secondaryinput(),
                     " is not -1, an op input or an earlier action (", num_inputs, " inputs)");
    }
    if (a.output() < -1)
      return OpError(p, "file action ", i, ": invalid output index ", a.output());
    if (a.output() >= 0 && !outputs.insert(a.output()).second) {
      return OpError(p, "file action ", i, ": duplicate output index ", a.output());
    }
    switch (a.action_case()) {
      case pb::FileAction::kCopy:
        KILN_RETURN_IF_ERROR(ValidatePath(p, i, "copy source", a.copy().src()));
        KILN_RETURN_IF_ERROR(ValidatePath(p, i, "copy destination", a.copy().dest()));
        if (a.copy().has_owner())
          KILN_RETURN_IF_ERROR(ValidateOwner(p, i, a.copy().owner(), limit));
        break;
      case pb::FileAction::kMkfile:
        KILN_RETURN_IF_ERROR(ValidatePath(p, i, "mkfile path", a.mkfile().path()));
        if (a.mkfile().has_owner())
          KILN_RETURN_IF_ERROR(ValidateOwner(p, i, a.mkfile().owner(), limit));
        break;
      case pb::FileAction::kMkdir:
        KILN_RETURN_IF_ERROR(ValidatePath(p, i, "mkdir path", a.mkdir().path()));
        if (a.mkdir().has_owner())
          KILN_RETURN_IF_ERROR(ValidateOwner(p, i, a.mkdir().owner(), limit));
        break;
      case pb::FileAction::kRm:
        KILN_RETURN_IF_ERROR(ValidatePath(p, i, "rm path", a.rm().path()));
        break;
      case pb::FileAction::kSymlink:
        KILN_RETURN_IF_ERROR(ValidatePath(p, i, "symlink target", a.symlink().oldpath()));
        KILN_RETURN_IF_ERROR(ValidatePath(p, i, "symlink path", a.symlink().newpath()));
        if (a.symlink().has_owner())
          KILN_RETURN_IF_ERROR(ValidateOwner(p, i, a.symlink().owner(), limit));
        break;
      default:
        return OpError(p, "file action ", i, " has no action (unknown action type)");
    }
  }
  if (outputs.empty()) return OpError(p, "file op with no outputs");
  int64_t expect = 0;
  for (int64_t o : outputs) {
    if (o != expect) return OpError(p, "file op is missing output index ", expect);
    ++expect;
  }
  return absl::OkStatus();
}

absl::Status ValidateBody(const ParsedOp& p) {
  const pb::Op& op = p.op;
  switch (op.op_case()) {
    case pb::Op::kSource:
      if (op.source().identifier().empty()) return OpError(p, "source identifier can't be empty");
      return absl::OkStatus();
    case pb::Op::kExec:
      return ValidateExec(p);
    case pb::Op::kFile:
      return ValidateFile(p);
    case pb::Op::kMerge:
      if (op.merge().inputs_size() == 0) return OpError(p, "merge op with no inputs");
      for (int i = 0; i < op.merge().inputs_size(); ++i) {
        if (!ValidInput(op.merge().inputs(i).input(), op)) {
          return OpError(p, "merge input ", i, ": input index ", op.merge().inputs(i).input(),
                         " out of range (", op.inputs_size(), " inputs)");
        }
      }
      return absl::OkStatus();
    case pb::Op::kDiff:
      if (!op.diff().has_lower() || !op.diff().has_upper()) {
        return OpError(p, "diff op without lower or upper input");
      }
      if (!ValidInputOrScratch(op.diff().lower().input(), op) ||
          !ValidInputOrScratch(op.diff().upper().input(), op)) {
        return OpError(p, "diff op input index out of range (", op.inputs_size(), " inputs)");
      }
      return absl::OkStatus();
    case pb::Op::kBuild:
      if (!ValidInputOrScratch(op.build().builder(), op)) {
        return OpError(p, "build op builder index ", op.build().builder(), " out of range");
      }
      for (const auto& [name, in] : op.build().inputs()) {
        if (!ValidInput(in.input(), op)) {
          return OpError(p, "build op input ", Quote(name), " index ", in.input(), " out of range");
        }
      }
      return absl::OkStatus();
    case pb::Op::kPassthrough:
      if (op.passthrough().id().empty()) return OpError(p, "passthrough op without id");
      if (op.passthrough().outputs_size() == 0) return OpError(p, "passthrough op without outputs");
      for (int64_t o : op.passthrough().outputs()) {
        if (!ValidInput(o, op)) return OpError(p, "passthrough output references input ", o);
      }
      return absl::OkStatus();
    case pb::Op::OP_NOT_SET:
      break;
  }
  return OpError(p, "unknown op (no op body; only the terminal op may have none)");
}

}  // namespace

bool MountProducesOutput(const pb::Mount& m) {
  if (m.output() < 0) return false;
  return m.mounttype() == pb::BIND || (m.mounttype() == pb::CACHE && m.input() != -1);
}

int64_t OutputCount(const pb::Op& op) {
  int64_t n = 0;
  switch (op.op_case()) {
    case pb::Op::kExec:
      for (const pb::Mount& m : op.exec().mounts()) n += MountProducesOutput(m) ? 1 : 0;
      return n;
    case pb::Op::kFile:
      for (const pb::FileAction& a : op.file().actions()) n += a.output() >= 0 ? 1 : 0;
      return n;
    case pb::Op::kPassthrough:
      return op.passthrough().outputs_size();
    case pb::Op::OP_NOT_SET:
      return 0;
    default:
      return 1;
  }
}

absl::Status Validate(const ParsedDefinition& def) {
  if (def.raw_op_count() == 0) return absl::InvalidArgumentError("invalid LLB: empty definition");
  if (def.ops().size() < 2) {
    return absl::InvalidArgumentError(
        StrCat("invalid LLB: definition has ", def.ops().size(),
               " distinct op(s); at least one op and the terminal op are required"));
  }
  const ParsedOp* terminal = def.terminal();
  if (terminal->op.op_case() != pb::Op::OP_NOT_SET) {
    return absl::InvalidArgumentError(
        StrCat("invalid LLB: no terminal op (the last op, ", terminal->digest.str(),
               ", has an op body; the terminal op carries only the result input)"));
  }
  if (terminal->op.inputs_size() == 0) {
    return absl::InvalidArgumentError(
        StrCat("invalid LLB: terminal op ", terminal->digest.str(), " has no inputs"));
  }
  for (const ParsedOp& p : def.ops()) {
    if (&p == terminal) continue;
    KILN_RETURN_IF_ERROR(ValidateBody(p));
  }
  // Dangling inputs and cycles; the order also lets each edge's index be checked against its
  // producer.
  absl::StatusOr<std::vector<const ParsedOp*>> order = def.TopologicalOrder();
  if (!order.ok()) {
    return absl::InvalidArgumentError(StrCat("invalid LLB: ", order.status().message()));
  }
  for (const ParsedOp& p : def.ops()) {
    for (int i = 0; i < p.op.inputs_size(); ++i) {
      const pb::Input& in = p.op.inputs(i);
      const ParsedOp* producer = def.Find(in.digest());
      if (producer == nullptr || producer == terminal) {
        return OpError(p, "input ", i, " references ", Quote(in.digest()),
                       ", which is not an op of the definition");
      }
      int64_t outputs = OutputCount(producer->op);
      if (in.index() < 0 || in.index() >= outputs) {
        return OpError(p, "input ", i, " uses output ", in.index(), " of ", producer->digest.str(),
                       ", which has ", outputs, " output(s)");
      }
    }
  }
  // Source map locations must point at a SourceInfo (error reporting indexes into them).
  for (const auto& [digest, locations] : def.source_map().locations()) {
    for (const pb::Location& loc : locations.locations()) {
      if (loc.sourceindex() < 0 || loc.sourceindex() >= def.source_map().infos_size()) {
        return absl::InvalidArgumentError(
            StrCat("invalid LLB: source map location of ", digest, " refers to source #",
                   loc.sourceindex(), ", but the definition has ", def.source_map().infos_size()));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ParsedDefinition> LoadDefinition(std::string_view definition_bytes) {
  KILN_ASSIGN_OR_RETURN(ParsedDefinition def, ParsedDefinition::Parse(definition_bytes));
  KILN_RETURN_IF_ERROR(Validate(def));
  return def;
}

}  // namespace kiln::llb
