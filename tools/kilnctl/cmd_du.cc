// kilnctl du / prune: the build cache's disk usage, and reclaiming it (buildctl du / prune).
#include <cstdio>

#include "base/status.h"
#include "base/strings.h"
#include "engine/worker/worker.h"
#include "tools/kilnctl/commands.h"

namespace kiln::tools::kilnctl {
namespace {

std::string HumanSize(int64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f%s" : "%.2f%s", v, units[u]);
  return buf;
}

// "10GB", "512MB", "1.5GiB", or a plain number of MB as buildctl's --keep-storage.
absl::StatusOr<int64_t> ParseStorage(const std::string& text) {
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(text, &pos);
  } catch (...) {
    return absl::InvalidArgumentError(StrCat("--keep-storage ", Quote(text), ": not a size"));
  }
  std::string unit = text.substr(pos);
  static const std::map<std::string, double> kUnits = {{"", 1e6},
                                                       {"b", 1},
                                                       {"k", 1e3},
                                                       {"kb", 1e3},
                                                       {"m", 1e6},
                                                       {"mb", 1e6},
                                                       {"g", 1e9},
                                                       {"gb", 1e9},
                                                       {"t", 1e12},
                                                       {"tb", 1e12},
                                                       {"kib", 1024},
                                                       {"mib", 1 << 20},
                                                       {"gib", double(1 << 30)},
                                                       {"tib", 1099511627776.0}};
  std::string lower;
  for (char c : unit) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = kUnits.find(lower);
  if (it == kUnits.end() || v < 0) {
    return absl::InvalidArgumentError(StrCat("--keep-storage ", Quote(text), ": unknown unit"));
  }
  return static_cast<int64_t>(v * it->second);
}

// Go durations as buildctl takes them: "48h", "30m", "1h30m", "90s".
absl::StatusOr<std::chrono::seconds> ParseDuration(const std::string& text) {
  int64_t total = 0;
  size_t i = 0;
  if (text.empty()) return std::chrono::seconds(0);
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])))) ++i;
    if (start == i || i == text.size()) {
      return absl::InvalidArgumentError(
          StrCat("--keep-duration ", Quote(text), ": expected e.g. 48h, 30m, 1h30m"));
    }
    int64_t n = std::stoll(text.substr(start, i - start));
    char unit = text[i++];
    int64_t mult = unit == 'h'   ? 3600
                   : unit == 'm' ? 60
                   : unit == 's' ? 1
                   : unit == 'd' ? 86400
                                 : 0;
    if (mult == 0) {
      return absl::InvalidArgumentError(
          StrCat("--keep-duration ", Quote(text), ": unknown unit ", Quote(std::string(1, unit))));
    }
    total += n * mult;
  }
  return std::chrono::seconds(total);
}

absl::Status RunDu(const Context& ctx, bool verbose) {
  engine::WorkerOptions wo;
  wo.root = ctx.root;
  KILN_ASSIGN_OR_RETURN(auto worker, engine::Worker::Open(wo));
  KILN_ASSIGN_OR_RETURN(auto usage, worker->DiskUsage());
  int64_t total = 0, reclaimable = 0;
  std::printf("%-40s %-12s %-10s %s\n", "ID", "RECLAIMABLE", "SIZE", "DESCRIPTION");
  for (const auto& e : usage) {
    total += e.size;
    if (!e.in_use) reclaimable += e.size;
    std::printf("%-40s %-12s %-10s %s\n", e.id.c_str(), e.in_use ? "false" : "true",
                HumanSize(e.size).c_str(),
                verbose ? StrCat(e.kind, " ", e.description).c_str() : e.description.c_str());
  }
  std::printf("Reclaimable:\t%s\nTotal:\t\t%s\n", HumanSize(reclaimable).c_str(),
              HumanSize(total).c_str());
  return absl::OkStatus();
}

struct PruneFlags {
  bool all = false;
  std::string keep_storage;
  std::string keep_duration;
};

absl::Status RunPrune(const Context& ctx, const PruneFlags& flags) {
  engine::PruneOptions po;
  po.all = flags.all;
  if (!flags.keep_storage.empty()) {
    KILN_ASSIGN_OR_RETURN(po.keep_storage, ParseStorage(flags.keep_storage));
  }
  KILN_ASSIGN_OR_RETURN(po.keep_duration, ParseDuration(flags.keep_duration));
  engine::WorkerOptions wo;
  wo.root = ctx.root;
  KILN_ASSIGN_OR_RETURN(auto worker, engine::Worker::Open(wo));
  KILN_ASSIGN_OR_RETURN(auto removed, worker->Prune(po));
  int64_t total = 0;
  for (const auto& e : removed) {
    total += e.size;
    std::printf("%-40s %-10s %s\n", e.id.c_str(), HumanSize(e.size).c_str(), e.description.c_str());
  }
  std::printf("Total:\t%s\n", HumanSize(total).c_str());
  return absl::OkStatus();
}

}  // namespace

void AddStorageCommands(CLI::App& app, Context& ctx) {
  auto verbose = std::make_shared<bool>(false);
  CLI::App* du = app.add_subcommand("du", "Disk usage of the build cache");
  du->add_flag("-v,--verbose", *verbose, "Show record kinds");
  du->callback([&ctx, verbose] { Report(ctx, RunDu(ctx, *verbose)); });

  auto flags = std::make_shared<PruneFlags>();
  CLI::App* prune = app.add_subcommand("prune", "Remove unused build cache");
  prune->add_flag("-a,--all", flags->all, "Also cache mounts and local-source mirrors");
  prune->add_option("--keep-storage", flags->keep_storage,
                    "Keep this much (plain number: MB, or 10GB, 512MiB ...)");
  prune->add_option("--keep-duration", flags->keep_duration,
                    "Keep records used within this duration (48h, 30m, ...)");
  prune->callback([&ctx, flags] { Report(ctx, RunPrune(ctx, *flags)); });
}

}  // namespace kiln::tools::kilnctl
