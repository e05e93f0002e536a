#include "tools/kilnctl/progress_ui.h"

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "base/status.h"
#include "base/strings.h"

namespace kiln::tools::kilnctl {
namespace {

using engine::Clock;

std::string Rfc3339Nano(Clock::time_point t) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ns / 1000000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[16];
  std::snprintf(frac, sizeof(frac), ".%09lldZ", static_cast<long long>(ns % 1000000000));
  return StrCat(buf, frac);
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// --progress=rawjson: one SolveStatus-shaped object per event.
class RawJsonSink : public engine::ProgressSink {
 public:
  explicit RawJsonSink(std::FILE* out) : out_(out) {}
  void OnVertex(const engine::VertexStatus& v) override {
    nlohmann::json j;
    j["digest"] = v.digest.str();
    j["name"] = v.name;
    nlohmann::json inputs = nlohmann::json::array();
    for (const auto& in : v.inputs) inputs.push_back(in.str());
    j["inputs"] = inputs;
    if (v.cached) j["cached"] = true;
    if (v.started) j["started"] = Rfc3339Nano(*v.started);
    if (v.completed) j["completed"] = Rfc3339Nano(*v.completed);
    if (!v.error.empty()) j["error"] = v.error;
    Emit({{"vertexes", nlohmann::json::array({j})}});
  }
  void OnStatus(const engine::StatusUpdate& s) override {
    nlohmann::json j;
    j["id"] = s.id;
    j["vertex"] = s.vertex.str();
    if (!s.name.empty()) j["name"] = s.name;
    j["current"] = s.current;
    if (s.total) j["total"] = s.total;
    j["timestamp"] = Rfc3339Nano(s.timestamp);
    if (s.started) j["started"] = Rfc3339Nano(*s.started);
    if (s.completed) j["completed"] = Rfc3339Nano(*s.completed);
    Emit({{"statuses", nlohmann::json::array({j})}});
  }
  void OnLog(const engine::LogChunk& l) override {
    nlohmann::json j;
    j["vertex"] = l.vertex.str();
    j["stream"] = l.stream;
    j["data"] = l.data;  // JSON string; invalid UTF-8 is replaced
    j["timestamp"] = Rfc3339Nano(l.timestamp);
    Emit({{"logs", nlohmann::json::array({j})}});
  }

 private:
  void Emit(const nlohmann::json& j) {
    std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::lock_guard<std::mutex> lock(mu_);
    std::fprintf(out_, "%s\n", line.c_str());
    std::fflush(out_);
  }
  std::mutex mu_;
  std::FILE* out_;
};

class QuietSink : public engine::ProgressSink {
 public:
  void OnVertex(const engine::VertexStatus&) override {}
  void OnStatus(const engine::StatusUpdate&) override {}
  void OnLog(const engine::LogChunk&) override {}
};

// --progress=tty: finished steps are printed once; running steps are redrawn below them
// ten times a second.
class TtySink : public engine::ProgressSink {
 public:
  explicit TtySink(std::FILE* out) : out_(out), start_(Clock::now()) {
    painter_ = std::thread([this] { PaintLoop(); });
  }
  ~TtySink() override { Finish(); }

  void OnVertex(const engine::VertexStatus& v) override {
    std::lock_guard<std::mutex> lock(mu_);
    Step& s = Lookup(v.digest);
    s.name = v.name;
    s.cached = s.cached || v.cached;
    if (v.started && !s.started) s.started = v.started;
    if (v.completed) {
      s.completed = v.completed;
      s.error = v.error;
    }
    if (s.cached && !s.completed) s.completed = Clock::now();
  }
  void OnStatus(const engine::StatusUpdate& st) override {
    std::lock_guard<std::mutex> lock(mu_);
    Step& s = Lookup(st.vertex);
    s.status = st.total > 0 ? StrCat(st.id, " ", st.current, "/", st.total) : st.id;
  }
  void OnLog(const engine::LogChunk& l) override {
    std::lock_guard<std::mutex> lock(mu_);
    Step& s = Lookup(l.vertex);
    s.log_tail.append(l.data);
    // Keep the last complete line and the partial one.
    size_t cut = s.log_tail.rfind('\n', s.log_tail.size() >= 2 ? s.log_tail.size() - 2 : 0);
    if (cut != std::string::npos && cut > 0) s.log_tail.erase(0, cut + 1);
    if (s.log_tail.size() > 200) s.log_tail.erase(0, s.log_tail.size() - 200);
  }

  void Finish() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (done_) return;
      done_ = true;
    }
    cv_.notify_all();
    if (painter_.joinable()) painter_.join();
    std::lock_guard<std::mutex> lock(mu_);
    PaintLocked(/*final=*/true);
  }

 private:
  struct Step {
    int index = 0;
    std::string name;
    bool cached = false;
    bool printed = false;
    std::optional<Clock::time_point> started, completed;
    std::string error, status, log_tail;
  };

  Step& Lookup(const Digest& d) {
    auto [it, inserted] = steps_.try_emplace(d);
    if (inserted) {
      it->second.index = next_index_++;
      order_.push_back(d);
    }
    return it->second;
  }

  void PaintLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!done_) {
      cv_.wait_for(lock, std::chrono::milliseconds(100));
      if (!done_) PaintLocked(false);
    }
  }

  static std::string OneLine(std::string s, size_t width) {
    for (char& c : s) {
      if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    }
    if (s.size() > width) s = s.substr(0, width - 3) + "...";
    return s;
  }

  void PaintLocked(bool final) {
    std::string frame;
    // Move up over the previous live block and clear it.
    for (int i = 0; i < live_lines_; ++i) frame += "\x1b[1A\x1b[2K";
    live_lines_ = 0;
    int done = 0;
    for (const Digest& d : order_) {
      Step& s = steps_[d];
      if (!s.completed || s.printed || s.name.empty()) continue;
      s.printed = true;
      std::string state = !s.error.empty() ? "ERROR" : s.cached ? "CACHED" : "DONE";
      double t = s.started ? Seconds(*s.completed - *s.started) : 0;
      frame += StrCat(" => ", s.cached ? "CACHED " : "", OneLine(s.name, 90), "  ",
                      state == "DONE" ? StrCat(static_cast<int>(t * 10) / 10.0, "s") : state, "\n");
    }
    for (const Digest& d : order_) {
      if (steps_[d].completed) done++;
    }
    frame += StrCat("[+] Building ", static_cast<int>(Seconds(Clock::now() - start_) * 10) / 10.0,
                    "s (", done, "/", order_.size(), ")", final ? " FINISHED" : "", "\n");
    live_lines_ = 1;
    if (!final) {
      for (const Digest& d : order_) {
        const Step& s = steps_[d];
        if (s.completed || !s.started || s.name.empty()) continue;
        frame += StrCat(" => ", OneLine(s.name, 80), "  ",
                        static_cast<int>(Seconds(Clock::now() - *s.started) * 10) / 10.0, "s\n");
        live_lines_++;
        std::string detail = !s.log_tail.empty() ? s.log_tail : s.status;
        if (!detail.empty()) {
          frame += StrCat(" => => ", OneLine(detail, 100), "\n");
          live_lines_++;
        }
      }
    }
    std::fputs(frame.c_str(), out_);
    std::fflush(out_);
  }

  std::FILE* out_;
  Clock::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  int live_lines_ = 0;
  int next_index_ = 1;
  std::map<Digest, Step> steps_;
  std::vector<Digest> order_;
  std::thread painter_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<engine::ProgressSink>> NewProgressSink(const std::string& mode,
                                                                      std::FILE* out) {
  std::string m = mode;
  if (m == "auto") m = ::isatty(::fileno(out)) ? "tty" : "plain";
  if (m == "plain") return std::make_shared<engine::PlainProgressPrinter>(out);
  if (m == "tty") return std::make_shared<TtySink>(out);
  if (m == "rawjson") return std::make_shared<RawJsonSink>(out);
  if (m == "quiet") return std::make_shared<QuietSink>();
  return absl::InvalidArgumentError(
      StrCat("--progress ", Quote(mode), ": expected auto, tty, plain, rawjson or quiet"));
}

void FinishProgress(engine::ProgressSink& sink) {
  if (auto* tty = dynamic_cast<TtySink*>(&sink)) tty->Finish();
}

}  // namespace kiln::tools::kilnctl
