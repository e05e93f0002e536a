#include "engine/solver/progress.h"

#include <cstdio>
#include <regex>

#include <gtest/gtest.h>

namespace kiln::engine {
namespace {

std::string ReadAll(std::FILE* f) {
  std::rewind(f);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  return out;
}

TEST(PlainProgressPrinterTest, PrintsBuildctlPlainFormat) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  PlainProgressPrinter p(f);
  const Digest a = Digest::Sha256Of("a");
  const Digest b = Digest::Sha256Of("b");
  const auto t0 = Clock::now();

  VertexStatus va{a, "[1/2] FROM base", {}, std::nullopt, std::nullopt, false, "", ""};
  p.OnVertex(va);  // loaded only: silent
  VertexStatus vb{b, "[2/2] RUN make", {a}, t0, std::nullopt, false, "", ""};
  p.OnVertex(vb);
  p.OnLog(LogChunk{b, 1, "cc -c main.c\nld main.o\n", t0 + std::chrono::milliseconds(231)});
  vb.completed = t0 + std::chrono::milliseconds(300);
  p.OnVertex(vb);
  va.started = va.completed = t0;
  va.cached = true;
  p.OnVertex(va);
  va.completed = t0;  // a repeated final event prints nothing new
  p.OnVertex(va);

  std::string out = ReadAll(f);
  std::fclose(f);
  EXPECT_EQ(out,
            "#1 [2/2] RUN make\n"
            "#1 0.231 cc -c main.c\n"
            "#1 0.231 ld main.o\n"
            "#1 DONE 0.3s\n"
            "\n"
            "#2 [1/2] FROM base\n"
            "#2 CACHED\n"
            "\n");
}

TEST(PlainProgressPrinterTest, ErrorsCancellationAndStatus) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  PlainProgressPrinter p(f);
  const Digest a = Digest::Sha256Of("a");
  const Digest b = Digest::Sha256Of("b");
  const auto t0 = Clock::now();
  p.OnVertex(VertexStatus{a, "RUN false", {}, t0, t0, false, "exit code: 1", ""});
  p.OnVertex(VertexStatus{b, "RUN sleep", {}, t0, std::nullopt, false, "", ""});
  StatusUpdate st;
  st.id = "sha256:abc";
  st.vertex = b;
  st.current = 1500000;
  st.total = 3000000;
  p.OnStatus(st);
  p.OnVertex(VertexStatus{b, "RUN sleep", {}, t0, t0, false, "cancelled", ""});
  std::string out = ReadAll(f);
  std::fclose(f);
  EXPECT_EQ(out,
            "#1 RUN false\n"
            "#1 ERROR: exit code: 1\n"
            "\n"
            "#2 RUN sleep\n"
            "#2 sha256:abc 1.50MB / 3.00MB\n"
            "#2 CANCELED\n"
            "\n");
}

TEST(ProgressRecorderTest, KeepsLatestVertexSnapshot) {
  ProgressRecorder r;
  const Digest a = Digest::Sha256Of("a");
  r.OnVertex(VertexStatus{a, "x", {}, std::nullopt, std::nullopt, false, "", ""});
  r.OnVertex(VertexStatus{a, "x", {}, Clock::now(), Clock::now(), true, "", ""});
  EXPECT_EQ(r.events().size(), 2u);
  ASSERT_EQ(r.vertices().size(), 1u);
  EXPECT_TRUE(r.vertices().at(a).cached);
}

}  // namespace
}  // namespace kiln::engine
