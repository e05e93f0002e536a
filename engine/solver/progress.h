// Build progress: what a job's client sees.
//
// The solver reports, per job, a snapshot of each vertex whenever its state changes (loaded,
// started, cached, completed or failed), status lines of long operations (a transfer: id,
// current, total) and log chunks of a step's stdout/stderr.  The shapes follow BuildKit's
// SolveStatus (Vertex, VertexStatus, VertexLog) so api/ can forward them unchanged, and
// PlainProgressPrinter renders them the way `buildctl --progress=plain` does:
//
//   #5 [2/4] RUN make
//   #5 0.231 cc -c main.c
//   #5 DONE 0.3s
//
// Thread-safety: a ProgressSink is called from the scheduler thread and from pool threads at the
// same time, so implementations must be thread-safe and must not block for long or call back into
// the solver.  The sinks here are.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/digest.h"
#include "engine/solver/types.h"

namespace kiln::engine {

using Clock = std::chrono::system_clock;

// BuildKit's client.Vertex: a full snapshot each time.
struct VertexStatus {
  Digest digest;
  std::string name;
  std::vector<Digest> inputs;
  std::optional<Clock::time_point> started;
  std::optional<Clock::time_point> completed;
  bool cached = false;
  std::string error;  // set with `completed` when the step failed or was cancelled
  std::string progress_group;
};

// BuildKit's client.VertexStatus.
struct StatusUpdate {
  std::string id;  // names the operation within the vertex, e.g. "sha256:ab.. (layer)"
  Digest vertex;   // filled by the solver
  std::string name;
  int64_t current = 0;
  int64_t total = 0;
  Clock::time_point timestamp{};
  std::optional<Clock::time_point> started;
  std::optional<Clock::time_point> completed;
};

// BuildKit's client.VertexLog.
struct LogChunk {
  Digest vertex;
  int stream = 1;  // 1 stdout, 2 stderr
  std::string data;
  Clock::time_point timestamp{};
};

class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  ProgressSink() = default;
  ProgressSink(const ProgressSink&) = delete;
  ProgressSink& operator=(const ProgressSink&) = delete;

  virtual void OnVertex(const VertexStatus& vertex) = 0;
  virtual void OnStatus(const StatusUpdate& status) = 0;
  virtual void OnLog(const LogChunk& log) = 0;
};

// The fan-out behind a VertexProgress: the sinks of the jobs holding a vertex when the op call
// started.
struct VertexProgress::Target {
  Digest vertex;
  std::vector<std::shared_ptr<ProgressSink>> sinks;
};

// Keeps every event in arrival order; for tests, history records and late-joining clients.
class ProgressRecorder : public ProgressSink {
 public:
  struct Event {
    enum class Kind { kVertex, kStatus, kLog } kind;
    VertexStatus vertex;
    StatusUpdate status;
    LogChunk log;
  };

  void OnVertex(const VertexStatus& vertex) override;
  void OnStatus(const StatusUpdate& status) override;
  void OnLog(const LogChunk& log) override;

  std::vector<Event> events() const;
  // The latest snapshot of each vertex seen.
  std::map<Digest, VertexStatus> vertices() const;

 private:
  mutable std::mutex mu_;
  std::vector<Event> events_;
};

// Writes buildctl's plain progress format to a FILE (not owned).  Vertices are numbered #1, #2..
// in order of first appearance; a vertex is announced when it starts or is found cached.
class PlainProgressPrinter : public ProgressSink {
 public:
  explicit PlainProgressPrinter(std::FILE* out) : out_(out) {}

  void OnVertex(const VertexStatus& vertex) override;
  void OnStatus(const StatusUpdate& status) override;
  void OnLog(const LogChunk& log) override;

 private:
  struct Seen {
    int index = 0;
    bool announced = false;
    bool finished = false;
    std::string name;
    std::optional<Clock::time_point> started;
  };
  Seen& Announce(const Digest& vertex, const std::string& name);

  std::mutex mu_;
  std::FILE* out_;
  int next_index_ = 1;
  std::map<Digest, Seen> seen_;
};

}  // namespace kiln::engine
