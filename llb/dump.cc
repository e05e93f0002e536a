#include "llb/dump.h"

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "base/status.h"
#include "base/strings.h"
#include "llb/go_compat.h"

namespace kiln::llb {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::OneofDescriptor;
using google::protobuf::Reflection;

// Fields BuildKit's gogo structs declare without `omitempty` (non-nullable customtypes, maps
// and embedded messages): Go prints them even when zero.
bool AlwaysEmitted(const FieldDescriptor* f) {
  static const std::set<std::string, std::less<>> kFields = {
      "pb.Input.digest",         "pb.Input.index",          "pb.Mount.input",
      "pb.Mount.output",         "pb.BuildOp.builder",      "pb.BuildInput.input",
      "pb.OpMetadata.caps",      "pb.Range.start",          "pb.Range.end",
      "pb.Definition.metadata",  "pb.FileAction.input",     "pb.FileAction.secondaryInput",
      "pb.FileAction.output",    "pb.NamedUserOpt.input",   "pb.MergeInput.input",
      "pb.LowerDiffInput.input", "pb.UpperDiffInput.input",
  };
  return kFields.count(f->full_name()) > 0;
}

// The fields that are Go []byte in BuildKit (base64 in JSON).  Every other text field is a Go
// string, although our schema declares most of them `bytes` (see ops.proto).
bool IsGoBytes(const FieldDescriptor* f) {
  static const std::set<std::string, std::less<>> kFields = {
      "pb.Definition.def", "pb.FileActionMkFile.data", "pb.SourceInfo.data"};
  return kFields.count(f->full_name()) > 0;
}

// Go names a oneof's interface field after the oneof, capitalized ("op" -> "Op").
std::string OneofKey(const OneofDescriptor* o) {
  std::string name = o->name();
  if (!name.empty()) name[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(name[0])));
  return name;
}

void AppendMessage(const Message& m, std::string* out);

void AppendScalar(const Message& m, const FieldDescriptor* f, int index, std::string* out) {
  const Reflection* r = m.GetReflection();
  const bool rep = index >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      StrAppend(out, rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      StrAppend(out, rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      StrAppend(out, rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      StrAppend(out, rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f));
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      out->append((rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false");
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      StrAppend(out, rep ? r->GetRepeatedEnumValue(m, f, index) : r->GetEnumValue(m, f));
      break;
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(m, f, index, &scratch)
                                 : r->GetStringReference(m, f, &scratch);
      if (IsGoBytes(f)) {
        std::string b64;
        absl::Base64Escape(absl::string_view(s.data(), s.size()), &b64);
        out->append(GoJsonQuote(b64));
      } else {
        out->append(GoJsonQuote(s));
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      AppendMessage(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f), out);
      break;
    default:
      out->append("null");
  }
}

// Zero value of a singular field as Go's omitempty sees it (a set message pointer is not empty).
bool ScalarIsZero(const Message& m, const FieldDescriptor* f) {
  const Reflection* r = m.GetReflection();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return r->GetInt32(m, f) == 0;
    case FieldDescriptor::CPPTYPE_INT64:
      return r->GetInt64(m, f) == 0;
    case FieldDescriptor::CPPTYPE_UINT32:
      return r->GetUInt32(m, f) == 0;
    case FieldDescriptor::CPPTYPE_UINT64:
      return r->GetUInt64(m, f) == 0;
    case FieldDescriptor::CPPTYPE_BOOL:
      return !r->GetBool(m, f);
    case FieldDescriptor::CPPTYPE_ENUM:
      return r->GetEnumValue(m, f) == 0;
    case FieldDescriptor::CPPTYPE_STRING:
      return r->GetString(m, f).empty();
    default:
      return false;
  }
}

bool IsZero(const Message& m, const FieldDescriptor* f) {
  const Reflection* r = m.GetReflection();
  if (f->is_repeated()) return r->FieldSize(m, f) == 0;
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) return !r->HasField(m, f);
  // proto3 scalars: HasField is false exactly for the zero value.
  return !r->HasField(m, f);
}

void AppendMap(const Message& m, const FieldDescriptor* f, std::string* out) {
  const Reflection* r = m.GetReflection();
  const int n = r->FieldSize(m, f);
  if (n == 0) {
    out->append("null");
    return;
  }
  const FieldDescriptor* key_f = f->message_type()->map_key();
  const FieldDescriptor* value_f = f->message_type()->map_value();
  std::vector<std::pair<std::string, const Message*>> entries;
  entries.reserve(n);
  for (int i = 0; i < n; ++i) {
    const Message& e = r->GetRepeatedMessage(m, f, i);
    entries.emplace_back(e.GetReflection()->GetString(e, key_f), &e);
  }
  std::stable_sort(entries.begin(), entries.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  out->push_back('{');
  bool first = true;
  std::string last_key;
  for (const auto& [key, e] : entries) {
    if (!first && key == last_key) continue;  // a map cannot repeat a key
    if (!first) out->push_back(',');
    first = false;
    last_key = key;
    out->append(GoJsonQuote(key));
    out->push_back(':');
    AppendScalar(*e, value_f, -1, out);
  }
  out->push_back('}');
}

void AppendMessage(const Message& m, std::string* out) {
  const Descriptor* d = m.GetDescriptor();
  const Reflection* r = m.GetReflection();
  out->push_back('{');
  bool first = true;
  auto key = [&](std::string_view name) {
    if (!first) out->push_back(',');
    first = false;
    out->append(GoJsonQuote(name));
    out->push_back(':');
  };
  std::set<const OneofDescriptor*> oneofs_done;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (const OneofDescriptor* o = f->real_containing_oneof()) {
      if (!oneofs_done.insert(o).second) continue;
      // Go: an interface field holding a wrapper struct {<field> value `json:",omitempty"`}.
      key(OneofKey(o));
      const FieldDescriptor* set = r->GetOneofFieldDescriptor(m, o);
      if (set == nullptr) {
        out->append("null");
        continue;
      }
      out->push_back('{');
      if (!ScalarIsZero(m, set)) {
        out->append(GoJsonQuote(set->name()));
        out->push_back(':');
        AppendScalar(m, set, -1, out);
      }
      out->push_back('}');
      continue;
    }
    const bool always = AlwaysEmitted(f);
    if (f->is_map()) {
      if (r->FieldSize(m, f) == 0 && !always) continue;
      key(f->name());
      AppendMap(m, f, out);
      continue;
    }
    if (f->is_repeated()) {
      if (r->FieldSize(m, f) == 0) continue;
      key(f->name());
      out->push_back('[');
      for (int j = 0; j < r->FieldSize(m, f); ++j) {
        if (j) out->push_back(',');
        AppendScalar(m, f, j, out);
      }
      out->push_back(']');
      continue;
    }
    if (IsZero(m, f) && !always) continue;
    key(f->name());
    AppendScalar(m, f, -1, out);
  }
  out->push_back('}');
}

}  // namespace

std::string GoJson(const Message& message) {
  std::string out;
  AppendMessage(message, &out);
  return out;
}

std::string DumpJson(const ParsedDefinition& def) {
  std::string out;
  const pb::OpMetadata empty;
  for (const std::string& bytes : def.proto().def()) {
    const Digest digest = OpDigest(bytes);
    const ParsedOp* op = def.Find(digest);
    const pb::OpMetadata* md = def.Metadata(digest);
    out.append("{\"Op\":");
    AppendMessage(op->op, &out);
    StrAppend(&out, ",\"Digest\":", GoJsonQuote(digest.str()), ",\"OpMetadata\":");
    AppendMessage(md ? *md : empty, &out);
    out.append("}\n");
  }
  return out;
}

absl::StatusOr<std::string> DumpJson(std::string_view definition_bytes) {
  KILN_ASSIGN_OR_RETURN(ParsedDefinition def, ParsedDefinition::Parse(definition_bytes));
  return DumpJson(def);
}

namespace {

// strconv.Quote for the ASCII range; valid multi-byte UTF-8 passes through (Go also escapes the
// rare non-printable non-ASCII runes, which do not occur in LLB names in practice).
std::string GoQuote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '\a':
        out += "\\a";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\v':
        out += "\\v";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '"':
        out += "\\\"";
        continue;
      default:
        break;
    }
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else {
      // Copy a valid UTF-8 sequence, escape a stray byte as Go does (\xNN).
      size_t len = (c >= 0xf0 && c <= 0xf4)   ? 4
                   : (c >= 0xe0)              ? 3
                   : (c >= 0xc2 && c <= 0xdf) ? 2
                                              : 0;
      bool valid = len > 0 && i + len <= s.size();
      for (size_t k = 1; valid && k < len; ++k) {
        valid = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
      }
      if (valid) {
        out.append(s.substr(i, len));
        i += len - 1;
      } else {
        out += "\\x";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xf]);
      }
    }
  }
  out.push_back('"');
  return out;
}

std::pair<std::string, std::string> DotAttr(const Digest& digest, const pb::Op& op) {
  switch (op.op_case()) {
    case pb::Op::kSource:
      return {op.source().identifier(), "ellipse"};
    case pb::Op::kExec: {
      std::string args;
      for (int i = 0; i < op.exec().meta().args_size(); ++i) {
        if (i) args.push_back(' ');
        args += op.exec().meta().args(i);
      }
      return {args, "box"};
    }
    case pb::Op::kBuild:
      return {"build", "box3d"};
    case pb::Op::kMerge:
      return {"merge", "invtriangle"};
    case pb::Op::kDiff:
      return {"diff", "doublecircle"};
    case pb::Op::kFile: {
      std::string names;
      for (int i = 0; i < op.file().actions_size(); ++i) {
        const pb::FileAction& a = op.file().actions(i);
        if (i) names.push_back(',');
        if (a.has_copy()) {
          StrAppend(&names, "copy{src=", a.copy().src(), ", dest=", a.copy().dest(), "}");
        } else if (a.has_mkfile()) {
          StrAppend(&names, "mkfile{path=", a.mkfile().path(), "}");
        } else if (a.has_mkdir()) {
          StrAppend(&names, "mkdir{path=", a.mkdir().path(), "}");
        } else if (a.has_rm()) {
          StrAppend(&names, "rm{path=", a.rm().path(), "}");
        }
      }
      return {names, "note"};
    }
    default:
      return {digest.str(), "plaintext"};
  }
}

}  // namespace

std::string DumpDot(const ParsedDefinition& def) {
  std::string out = "digraph {\n";
  for (const std::string& bytes : def.proto().def()) {
    const Digest digest = OpDigest(bytes);
    const auto [label, shape] = DotAttr(digest, def.Find(digest)->op);
    StrAppend(&out, "  ", GoQuote(digest.str()), " [label=", GoQuote(label),
              " shape=", GoQuote(shape), "];\n");
  }
  for (const std::string& bytes : def.proto().def()) {
    const Digest digest = OpDigest(bytes);
    const pb::Op& op = def.Find(digest)->op;
    for (int i = 0; i < op.inputs_size(); ++i) {
      std::string label;
      if (op.has_exec()) {
        for (const pb::Mount& m : op.exec().mounts()) {
          if (m.input() == i && m.dest() != "/") label = m.dest();
        }
      }
      StrAppend(&out, "  ", GoQuote(op.inputs(i).digest()), " -> ", GoQuote(digest.str()),
                " [label=", GoQuote(label), "];\n");
    }
  }
  out += "}\n";
  return out;
}

absl::StatusOr<std::string> DumpDot(std::string_view definition_bytes) {
  KILN_ASSIGN_OR_RETURN(ParsedDefinition def, ParsedDefinition::Parse(definition_bytes));
  return DumpDot(def);
}

std::string MarshalDefinition(const pb::Definition& def) { return SerializeDeterministic(def); }

}  // namespace kiln::llb
