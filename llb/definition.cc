#include "llb/definition.h"

#include <utility>

#include "base/status.h"
#include "base/strings.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/stubs/logging.h"

namespace kiln::llb {

std::string SerializeDeterministic(const google::protobuf::MessageLite& message) {
  std::string out;
  out.reserve(message.ByteSizeLong());
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

absl::StatusOr<ParsedDefinition> ParsedDefinition::Parse(std::string_view definition_bytes) {
  pb::Definition def;
  // Hostile input must not turn into log lines (protobuf logs each non-UTF-8 map key it meets).
  google::protobuf::LogSilencer quiet;
  if (definition_bytes.size() > static_cast<size_t>(INT32_MAX) ||
      !def.ParseFromArray(definition_bytes.data(), static_cast<int>(definition_bytes.size()))) {
    return absl::InvalidArgumentError(StrCat("parse LLB definition (", definition_bytes.size(),
                                             " bytes): not a valid pb.Definition"));
  }
  return FromProto(std::move(def));
}

absl::StatusOr<ParsedDefinition> ParsedDefinition::FromProto(pb::Definition def) {
  ParsedDefinition pd;
  pd.raw_op_count_ = static_cast<size_t>(def.def_size());
  pd.ops_.reserve(pd.raw_op_count_);
  pd.index_.reserve(pd.raw_op_count_);
  int64_t last = -1;
  for (int i = 0; i < def.def_size(); ++i) {
    const std::string& bytes = def.def(i);
    Digest digest = OpDigest(bytes);
    if (auto it = pd.index_.find(digest.str()); it != pd.index_.end()) {
      last = static_cast<int64_t>(it->second);
      continue;
    }
    ParsedOp op;
    google::protobuf::LogSilencer quiet;
    if (!op.op.ParseFromString(bytes)) {
      return absl::InvalidArgumentError(
          StrCat("parse LLB op #", i, " (", digest.str(), "): not a valid pb.Op"));
    }
    op.digest = digest;
    op.bytes = bytes;
    pd.index_.emplace(digest.str(), pd.ops_.size());
    last = static_cast<int64_t>(pd.ops_.size());
    pd.ops_.push_back(std::move(op));
  }
  pd.ChooseTerminal(last);
  pd.def_ = std::move(def);
  return pd;
}

// The terminal: the last element when it has no op body (BuildKit's layout), else the unique
// body-less op, else the last element (what BuildKit's solver would use).
void ParsedDefinition::ChooseTerminal(int64_t last) {
  terminal_ = last;
  if (last < 0 || ops_[last].op.op_case() == pb::Op::OP_NOT_SET) return;
  int64_t bodyless = -1;
  int count = 0;
  for (size_t i = 0; i < ops_.size(); ++i) {
    if (ops_[i].op.op_case() == pb::Op::OP_NOT_SET) {
      bodyless = static_cast<int64_t>(i);
      ++count;
    }
  }
  if (count == 1) terminal_ = bodyless;
}

ParsedDefinition ParsedDefinition::FromTrustedOpsForTest(std::vector<ParsedOp> ops) {
  ParsedDefinition pd;
  pd.raw_op_count_ = ops.size();
  for (ParsedOp& op : ops) {
    pd.def_.add_def(op.bytes);
    pd.index_.emplace(op.digest.str(), pd.ops_.size());
    pd.ops_.push_back(std::move(op));
  }
  pd.ChooseTerminal(static_cast<int64_t>(pd.ops_.size()) - 1);
  return pd;
}

const ParsedOp* ParsedDefinition::Find(std::string_view digest) const {
  auto it = index_.find(std::string(digest));
  return it == index_.end() ? nullptr : &ops_[it->second];
}

const ParsedOp* ParsedDefinition::Find(const Digest& digest) const { return Find(digest.str()); }

const pb::OpMetadata* ParsedDefinition::Metadata(const Digest& digest) const {
  auto it = def_.metadata().find(digest.str());
  return it == def_.metadata().end() ? nullptr : &it->second;
}

const pb::Input* ParsedDefinition::result() const {
  const ParsedOp* t = terminal();
  if (t == nullptr || t->op.inputs_size() == 0) return nullptr;
  return &t->op.inputs(0);
}

absl::StatusOr<std::vector<const ParsedOp*>> ParsedDefinition::TopologicalOrder() const {
  enum : uint8_t { kWhite, kGray, kBlack };
  std::vector<uint8_t> color(ops_.size(), kWhite);
  std::vector<const ParsedOp*> order;
  order.reserve(ops_.size());
  struct Frame {
    size_t op;
    int next_input;
  };
  std::vector<Frame> stack;
  for (size_t root = 0; root < ops_.size(); ++root) {
    if (static_cast<int64_t>(root) == terminal_ || color[root] != kWhite) continue;
    stack.push_back({root, 0});
    color[root] = kGray;
    while (!stack.empty()) {
      Frame& f = stack.back();
      const pb::Op& op = ops_[f.op].op;
      if (f.next_input == op.inputs_size()) {
        color[f.op] = kBlack;
        order.push_back(&ops_[f.op]);
        stack.pop_back();
        continue;
      }
      const pb::Input& in = op.inputs(f.next_input++);
      auto it = index_.find(in.digest());
      if (it == index_.end() || static_cast<int64_t>(it->second) == terminal_) {
        return absl::NotFoundError(StrCat("op ", ops_[f.op].digest.str(), ": input ",
                                          f.next_input - 1, " references ", Quote(in.digest()),
                                          ", which is not an op of the definition"));
      }
      size_t next = it->second;
      if (color[next] == kGray) {
        return absl::FailedPreconditionError(
            StrCat("op ", ops_[next].digest.str(), " depends on itself (cycle in the graph)"));
      }
      if (color[next] == kWhite) {
        color[next] = kGray;
        stack.push_back({next, 0});
      }
    }
  }
  return order;
}

}  // namespace kiln::llb
