// libFuzzer target for LLB received from clients: parse a pb.Definition, validate it, order it
// and dump it, as a daemon and `kilnctl debug dump-llb` do.  Any crash, sanitizer report or
// hang is a bug; errors are expected.  Invariants checked on every input:
//   * every parsed op is found again by its digest, and the digest is sha256 of its bytes;
//   * a definition that validates has a result whose producer exists and a topological order
//     that lists every op but the terminal, inputs first;
//   * the JSON dump of a parsed definition has one line per Definition.def element, and the dot
//     dump is a complete digraph.
// Seed corpus: llb/testdata/*.pb.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "llb/definition.h"
#include "llb/dump.h"
#include "llb/validate.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln::llb;
  absl::StatusOr<ParsedDefinition> def =
      ParsedDefinition::Parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!def.ok()) return 0;
  for (const ParsedOp& op : def->ops()) {
    Check(def->Find(op.digest) == &op);
    Check(op.digest == OpDigest(op.bytes));
  }
  absl::StatusOr<std::vector<const ParsedOp*>> order = def->TopologicalOrder();
  if (Validate(*def).ok()) {
    Check(def->result() != nullptr);
    Check(def->Find(def->result()->digest()) != nullptr);
    Check(order.ok());
    Check(order->size() + 1 == def->ops().size());
    std::set<std::string> seen;
    for (const ParsedOp* op : *order) {
      for (const auto& in : op->op.inputs()) Check(seen.count(in.digest()) == 1);
      seen.insert(op->digest.str());
    }
  }
  std::string dump = DumpJson(*def);
  size_t lines = 0;
  for (char c : dump) lines += c == '\n';
  Check(lines == def->raw_op_count());
  std::string dot = DumpDot(*def);
  Check(dot.rfind("digraph {\n", 0) == 0 && dot.size() >= 12 &&
        dot.substr(dot.size() - 2) == "}\n");
  return 0;
}
