// Test helpers for llb tests (not part of the library).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/fs.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "llb/definition.h"
#include "llb/pb/ops.pb.h"

namespace kiln::llb::testing {

inline std::string TestdataPath(const std::string& name) {
  return std::string(KILN_LLB_TESTDATA) + "/" + name;
}

inline std::string ReadTestdata(const std::string& name) {
  auto data = ReadFileToString(TestdataPath(name));
  EXPECT_TRUE(data.ok()) << data.status();
  return data.ok() ? *data : std::string();
}

inline pb::Definition ParseDefinitionProto(const std::string& bytes) {
  pb::Definition def;
  EXPECT_TRUE(def.ParseFromString(bytes));
  return def;
}

// Op bytes of a definition keyed by digest.
inline std::map<std::string, std::string> OpsByDigest(const pb::Definition& def) {
  std::map<std::string, std::string> out;
  for (const std::string& op : def.def()) out[OpDigest(op).str()] = op;
  return out;
}

// A readable rendering of an op for failure messages.
inline std::string OpText(const std::string& bytes) {
  pb::Op op;
  op.ParseFromString(bytes);
  return op.ShortDebugString();
}

// Expects two definitions to hold the same ops (bytes and digests), the same terminal op last,
// equal metadata and source maps.  Op order may differ where BuildKit's own order is random
// (Go iterates a map for the inputs of an op with several of them).
inline void ExpectSameDefinition(const pb::Definition& ours, const pb::Definition& ref) {
  auto a = OpsByDigest(ours), b = OpsByDigest(ref);
  for (const auto& [d, bytes] : b) {
    EXPECT_TRUE(a.count(d)) << "missing op " << d << ": " << OpText(bytes);
  }
  for (const auto& [d, bytes] : a) {
    EXPECT_TRUE(b.count(d)) << "unexpected op " << d << ": " << OpText(bytes);
  }
  ASSERT_GT(ours.def_size(), 0);
  ASSERT_GT(ref.def_size(), 0);
  EXPECT_EQ(ours.def(ours.def_size() - 1), ref.def(ref.def_size() - 1)) << "terminal op differs";
  EXPECT_EQ(ours.def_size(), ref.def_size());
  EXPECT_EQ(ours.metadata_size(), ref.metadata_size());
  for (const auto& [d, md] : ref.metadata()) {
    auto it = ours.metadata().find(d);
    if (it == ours.metadata().end()) {
      ADD_FAILURE() << "no metadata for " << d;
      continue;
    }
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(it->second, md))
        << "metadata of " << d << "\nours: " << it->second.ShortDebugString()
        << "\nref:  " << md.ShortDebugString();
  }
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(ours.source(), ref.source()))
      << "ours: " << ours.source().ShortDebugString()
      << "\nref: " << ref.source().ShortDebugString();
}

// The "local.unique" attr of the first local source of a definition (BuildKit draws it at
// random; tests reuse the reference's value).
inline std::string LocalUniqueOf(const pb::Definition& def) {
  for (const std::string& bytes : def.def()) {
    pb::Op op;
    op.ParseFromString(bytes);
    if (op.has_source()) {
      auto it = op.source().attrs().find("local.unique");
      if (it != op.source().attrs().end()) return it->second;
    }
  }
  return "";
}

}  // namespace kiln::llb::testing
