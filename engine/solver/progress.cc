#include "engine/solver/progress.h"

#include <cinttypes>

namespace kiln::engine {

std::vector<const std::any*> SessionGroup::Find(std::string_view key) const {
  std::vector<const std::any*> out;
  for (const auto& job : jobs_) {
    if (!job) continue;
    auto it = job->find(key);
    if (it != job->end()) out.push_back(&it->second);
  }
  return out;
}

void VertexProgress::Log(int stream, std::string_view data) const {
  if (!target_ || data.empty()) return;
  LogChunk chunk{target_->vertex, stream, std::string(data), Clock::now()};
  for (const auto& sink : target_->sinks) sink->OnLog(chunk);
}

void VertexProgress::Status(const StatusUpdate& update) const {
  if (!target_) return;
  StatusUpdate copy = update;
  copy.vertex = target_->vertex;
  if (copy.timestamp == Clock::time_point{}) copy.timestamp = Clock::now();
  for (const auto& sink : target_->sinks) sink->OnStatus(copy);
}

void ProgressRecorder::OnVertex(const VertexStatus& vertex) {
  std::lock_guard<std::mutex> lock(mu_);
  events_.push_back(Event{Event::Kind::kVertex, vertex, {}, {}});
}

void ProgressRecorder::OnStatus(const StatusUpdate& status) {
  std::lock_guard<std::mutex> lock(mu_);
  events_.push_back(Event{Event::Kind::kStatus, {}, status, {}});
}

void ProgressRecorder::OnLog(const LogChunk& log) {
  std::lock_guard<std::mutex> lock(mu_);
  events_.push_back(Event{Event::Kind::kLog, {}, {}, log});
}

std::vector<ProgressRecorder::Event> ProgressRecorder::events() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_;
}

std::map<Digest, VertexStatus> ProgressRecorder::vertices() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<Digest, VertexStatus> out;
  for (const auto& e : events_) {
    if (e.kind == Event::Kind::kVertex) out[e.vertex.digest] = e.vertex;
  }
  return out;
}

namespace {

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string HumanBytes(int64_t n) {
  static constexpr const char* kUnits[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(n);
  int unit = 0;
  while (v >= 1000 && unit < 4) {
    v /= 1000;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f%s", v, kUnits[unit]);
  return buf;
}

}  // namespace

PlainProgressPrinter::Seen& PlainProgressPrinter::Announce(const Digest& vertex,
                                                           const std::string& name) {
  Seen& s = seen_[vertex];
  if (s.index == 0) s.index = next_index_++;
  if (!name.empty()) s.name = name;
  if (!s.announced) {
    s.announced = true;
    std::fprintf(out_, "#%d %s\n", s.index, s.name.empty() ? vertex.str().c_str() : s.name.c_str());
  }
  return s;
}

void PlainProgressPrinter::OnVertex(const VertexStatus& v) {
  std::lock_guard<std::mutex> lock(mu_);
  // A vertex that is only loaded (not started, not cached) stays silent, like buildctl.
  if (!v.started && !v.cached && !v.completed) return;
  Seen& s = Announce(v.digest, v.name);
  if (v.started) s.started = v.started;
  if (!v.completed || s.finished) {
    std::fflush(out_);
    return;
  }
  s.finished = true;
  if (v.cached) {
    std::fprintf(out_, "#%d CACHED\n", s.index);
  } else if (!v.error.empty()) {
    if (v.error.find("cancel") != std::string::npos) {
      std::fprintf(out_, "#%d CANCELED\n", s.index);
    } else {
      std::fprintf(out_, "#%d ERROR: %s\n", s.index, v.error.c_str());
    }
  } else if (s.started) {
    std::fprintf(out_, "#%d DONE %.1fs\n", s.index, Seconds(*v.completed - *s.started));
  } else {
    std::fprintf(out_, "#%d DONE\n", s.index);
  }
  std::fprintf(out_, "\n");
  std::fflush(out_);
}

void PlainProgressPrinter::OnStatus(const StatusUpdate& st) {
  std::lock_guard<std::mutex> lock(mu_);
  Seen& s = Announce(st.vertex, "");
  std::string bytes;
  if (st.total > 0) {
    bytes = " " + HumanBytes(st.current) + " / " + HumanBytes(st.total);
  } else if (st.current > 0) {
    bytes = " " + HumanBytes(st.current);
  }
  char tail[48] = "";
  if (st.completed && st.started) {
    std::snprintf(tail, sizeof(tail), " %.1fs done", Seconds(*st.completed - *st.started));
  } else if (st.completed) {
    std::snprintf(tail, sizeof(tail), " done");
  }
  std::fprintf(out_, "#%d %s%s%s\n", s.index, st.id.c_str(), bytes.c_str(), tail);
  std::fflush(out_);
}

void PlainProgressPrinter::OnLog(const LogChunk& log) {
  std::lock_guard<std::mutex> lock(mu_);
  Seen& s = Announce(log.vertex, "");
  double at = s.started ? Seconds(log.timestamp - *s.started) : 0.0;
  // One prefix per line, as buildctl does.
  size_t pos = 0;
  while (pos < log.data.size()) {
    size_t nl = log.data.find('\n', pos);
    size_t end = nl == std::string::npos ? log.data.size() : nl;
    std::fprintf(out_, "#%d %.3f %.*s\n", s.index, at, static_cast<int>(end - pos),
                 log.data.data() + pos);
    pos = end + 1;
  }
  std::fflush(out_);
}

}  // namespace kiln::engine
