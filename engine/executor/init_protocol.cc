#include "engine/executor/init_protocol.h"

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "base/strings.h"

namespace kiln::engine::internal {
namespace {

using Json = nlohmann::json;

Json MountToJson(const MountSpec& m) {
  return Json{{"type", m.type}, {"source", m.source}, {"target", m.target}, {"options", m.options}};
}

MountSpec MountFromJson(const Json& j) {
  MountSpec m;
  m.type = j.at("type").get<std::string>();
  m.source = j.at("source").get<std::string>();
  m.target = j.at("target").get<std::string>();
  m.options = j.at("options").get<std::vector<std::string>>();
  return m;
}

Json ProcessToJson(const ProcessSpec& p) {
  Json hosts = Json::array();
  for (const auto& [host, ip] : p.extra_hosts) hosts.push_back(Json::array({host, ip}));
  Json rlimits = Json::array();
  for (const auto& r : p.rlimits) {
    rlimits.push_back(Json{{"name", r.name}, {"soft", r.soft}, {"hard", r.hard}});
  }
  return Json{{"args", p.args},
              {"env", p.env},
              {"cwd", p.cwd},
              {"user", p.user},
              {"hostname", p.hostname},
              {"extra_hosts", hosts},
              {"network", p.network == NetworkMode::kHost ? "host" : "none"},
              {"security", p.security == SecurityMode::kInsecure ? "insecure" : "sandbox"},
              {"rlimits", rlimits},
              {"remove_mount_stubs_recursive", p.remove_mount_stubs_recursive}};
}

ProcessSpec ProcessFromJson(const Json& j) {
  ProcessSpec p;
  p.args = j.at("args").get<std::vector<std::string>>();
  p.env = j.at("env").get<std::vector<std::string>>();
  p.cwd = j.at("cwd").get<std::string>();
  p.user = j.at("user").get<std::string>();
  p.hostname = j.at("hostname").get<std::string>();
  for (const auto& h : j.at("extra_hosts")) {
    p.extra_hosts.emplace_back(h.at(0).get<std::string>(), h.at(1).get<std::string>());
  }
  p.network =
      j.at("network").get<std::string>() == "host" ? NetworkMode::kHost : NetworkMode::kNone;
  p.security = j.at("security").get<std::string>() == "insecure" ? SecurityMode::kInsecure
                                                                 : SecurityMode::kSandbox;
  for (const auto& r : j.at("rlimits")) {
    p.rlimits.push_back(Rlimit{r.at("name").get<std::string>(), r.at("soft").get<uint64_t>(),
                               r.at("hard").get<uint64_t>()});
  }
  p.remove_mount_stubs_recursive = j.at("remove_mount_stubs_recursive").get<bool>();
  return p;
}

}  // namespace

std::string EncodeInitSpec(const InitSpec& spec) {
  Json mounts = Json::array();
  for (const auto& m : spec.mounts) mounts.push_back(MountToJson(m));
  Json j{{"rootfs_dir", spec.rootfs_dir},
         {"mounts", mounts},
         {"hosts_file", spec.hosts_file},
         {"resolv_conf_file", spec.resolv_conf_file},
         {"process", ProcessToJson(spec.process)}};
  // MessagePack carries strings as raw bytes: arguments and paths need not be UTF-8.
  std::vector<uint8_t> bytes = Json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

absl::StatusOr<InitSpec> DecodeInitSpec(std::string_view json) {
  try {
    Json j = Json::from_msgpack(json.begin(), json.end());
    InitSpec spec;
    spec.rootfs_dir = j.at("rootfs_dir").get<std::string>();
    for (const auto& m : j.at("mounts")) spec.mounts.push_back(MountFromJson(m));
    spec.hosts_file = j.at("hosts_file").get<std::string>();
    spec.resolv_conf_file = j.at("resolv_conf_file").get<std::string>();
    spec.process = ProcessFromJson(j.at("process"));
    return spec;
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(StrCat("decode kiln-init spec: ", e.what()));
  }
}

std::string EncodeInitReport(const InitReport& report) {
  const char* kind = "error";
  switch (report.kind) {
    case InitReport::Kind::kError:
      kind = "error";
      break;
    case InitReport::Kind::kExit:
      kind = "exit";
      break;
    case InitReport::Kind::kSignal:
      kind = "signal";
      break;
    case InitReport::Kind::kExecError:
      kind = "exec_error";
      break;
  }
  Json j{{"kind", kind}, {"value", report.value}, {"message", report.message}};
  // Messages are for people: invalid UTF-8 in them is replaced rather than fatal.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

absl::StatusOr<InitReport> DecodeInitReport(std::string_view line) {
  try {
    Json j = Json::parse(line);
    InitReport r;
    std::string kind = j.at("kind").get<std::string>();
    if (kind == "error")
      r.kind = InitReport::Kind::kError;
    else if (kind == "exit")
      r.kind = InitReport::Kind::kExit;
    else if (kind == "signal")
      r.kind = InitReport::Kind::kSignal;
    else if (kind == "exec_error")
      r.kind = InitReport::Kind::kExecError;
    else
      return absl::InvalidArgumentError(StrCat("unknown kiln-init report kind ", Quote(kind)));
    r.value = j.at("value").get<int>();
    r.message = j.at("message").get<std::string>();
    return r;
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(StrCat("decode kiln-init report: ", e.what()));
  }
}

}  // namespace kiln::engine::internal
