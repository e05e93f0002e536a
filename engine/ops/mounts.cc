#include "engine/ops/mounts.h"

#include <cerrno>
#include <utility>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "base/digest.h"
#include "base/status.h"
#include "base/strings.h"
#include "engine/ops/file_tree.h"
#include "engine/worker/worker.h"
#include "snapshotter/fs_util.h"

namespace kiln::engine {
namespace {

std::string ShortHash(std::string_view s, size_t n) {
  return std::string(Digest::Sha256Of(s).hex().substr(0, n));
}

std::string KeyDir(const std::string& id, const std::string& from_key) {
  return StrCat(CacheMounts::DirPrefix(id), from_key.empty() ? "0" : ShortHash(from_key, 16));
}

}  // namespace

// ---- cache mounts ----

std::string CacheMounts::DirPrefix(const std::string& id) { return StrCat(ShortHash(id, 32), "-"); }

CacheMounts& CacheMounts::ForWorker(Worker& worker) {
  static std::mutex mu;
  static auto* registry = new std::map<std::string, std::unique_ptr<CacheMounts>>();
  std::lock_guard<std::mutex> lock(mu);
  std::string dir = worker.CacheMountsDir();
  auto& slot = (*registry)[dir];
  if (!slot) slot.reset(new CacheMounts(worker, dir));
  {
    std::lock_guard<std::mutex> inner(slot->mu_);
    slot->worker_ = &worker;
  }
  return *slot;
}

std::string CacheMounts::InstancePath(const std::string& key_dir, int n) const {
  return n == 0 ? StrCat(dir_, "/", key_dir) : StrCat(dir_, "/", key_dir, ".", n);
}

void CacheMounts::ScanLocked(const std::string& key_dir, KeyState& state) {
  state.scanned = true;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir_.c_str()), ::closedir);
  if (!d) return;
  while (dirent* e = ::readdir(d.get())) {
    std::string_view name = e->d_name;
    if (!name.starts_with(key_dir)) continue;
    std::string_view rest = name.substr(key_dir.size());
    int n = 0;
    if (!rest.empty()) {
      if (rest[0] != '.' || !absl::SimpleAtoi(ToAbsl(rest.substr(1)), &n) || n <= 0) continue;
    }
    state.instances[n].exists = true;
  }
}

absl::Status CacheMounts::CreateInstance(const std::string& path, const ResultRef& from) {
  std::string tmp = StrCat(path, ".tmp");
  KILN_RETURN_IF_ERROR(RemoveAll(tmp));
  if (::mkdir(tmp.c_str(), 0755) != 0) return ErrnoStatus(StrCat("mkdir ", Quote(tmp)));
  if (from && !SnapshotKeyOf(from).empty()) {
    absl::Status s = worker_->WithReadOnlyMount(
        from, [&](const std::string& src) { return snapshotter::CopyTree(src, tmp); });
    if (!s.ok()) {
      (void)RemoveAll(tmp);
      return Annotate(s, "seed cache mount");
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = ErrnoStatus(StrCat("rename ", Quote(tmp)));
    (void)RemoveAll(tmp);
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CacheMountLease>> CacheMounts::Acquire(const std::string& id,
                                                                      pb::CacheSharingOpt sharing,
                                                                      const ResultRef& from,
                                                                      const CancelToken& cancel) {
  if (sharing != pb::SHARED && sharing != pb::PRIVATE && sharing != pb::LOCKED) {
    return absl::InvalidArgumentError(StrCat("invalid cache sharing option ", int(sharing)));
  }
  const std::string key = KeyDir(id, SnapshotKeyOf(from));
  CancelRegistration wake = cancel.OnCancel([this] {
    { std::lock_guard<std::mutex> lock(mu_); }
    cv_.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu_);
  KeyState& state = keys_[key];
  if (!state.scanned) ScanLocked(key, state);
  for (;;) {
    if (cancel.cancelled()) return cancel.Check();
    if (sharing == pb::SHARED) {
      for (auto& [n, inst] : state.instances) {
        if (inst.exists && inst.shared && inst.users > 0) {
          inst.users++;
          return std::unique_ptr<CacheMountLease>(
              new CacheMountLease(this, key, n, InstancePath(key, n)));
        }
      }
    }
    bool any = false;
    for (auto& [n, inst] : state.instances) {
      if (inst.exists || inst.creating) any = true;
      if (inst.exists && inst.users == 0) {
        inst.users = 1;
        inst.shared = sharing == pb::SHARED;
        return std::unique_ptr<CacheMountLease>(
            new CacheMountLease(this, key, n, InstancePath(key, n)));
      }
    }
    if (sharing == pb::LOCKED && any) {
      ++waiting_;
      cv_.wait(lock);
      --waiting_;
      continue;
    }
    break;
  }
  int n = 0;
  while (state.instances.count(n) && (state.instances[n].exists || state.instances[n].creating)) {
    ++n;
  }
  Instance& inst = state.instances[n];
  inst.creating = true;
  inst.users = 1;
  inst.shared = sharing == pb::SHARED;
  const std::string path = InstancePath(key, n);
  lock.unlock();
  absl::Status s = CreateInstance(path, from);
  lock.lock();
  Instance& done = keys_[key].instances[n];
  done.creating = false;
  if (!s.ok()) {
    done.users = 0;
    cv_.notify_all();
    return s;
  }
  done.exists = true;
  return std::unique_ptr<CacheMountLease>(new CacheMountLease(this, key, n, path));
}

int CacheMounts::Waiting() {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_;
}

void CacheMounts::Release(const std::string& key, int instance) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Instance& inst = keys_[key].instances[instance];
    if (--inst.users <= 0) {
      inst.users = 0;
      inst.shared = false;
    }
  }
  cv_.notify_all();
}

absl::Status CacheMounts::Reset(const std::set<std::string>& ids) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& id : ids) {
    const std::string prefix = DirPrefix(id);
    std::vector<std::string> names;
    {
      std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir_.c_str()), ::closedir);
      if (!d) continue;
      while (dirent* e = ::readdir(d.get())) {
        std::string_view name = e->d_name;
        if (name.starts_with(prefix)) names.emplace_back(name);
      }
    }
    for (const std::string& name : names) {
      // Skip instances in use.
      bool busy = false;
      for (auto& [key, state] : keys_) {
        if (!name.starts_with(key)) continue;
        for (auto& [n, inst] : state.instances) {
          if ((inst.users > 0 || inst.creating) &&
              InstancePath(key, n) == StrCat(dir_, "/", name)) {
            busy = true;
          }
        }
      }
      if (busy) continue;
      KILN_RETURN_IF_ERROR(RemoveAll(StrCat(dir_, "/", name)));
    }
    for (auto& [key, state] : keys_) {
      if (key.starts_with(prefix)) {
        std::map<int, Instance> kept;
        for (auto& [n, inst] : state.instances) {
          if (inst.users > 0 || inst.creating) kept[n] = inst;
        }
        state.instances = std::move(kept);
      }
    }
  }
  return absl::OkStatus();
}

CacheMountLease::~CacheMountLease() { owner_->Release(key_, instance_); }

// ---- secrets ----

absl::StatusOr<std::unique_ptr<SecretFile>> SecretFile::Create(Worker& worker,
                                                               std::string_view data, uint32_t uid,
                                                               uint32_t gid, uint32_t mode) {
  std::unique_ptr<SecretFile> f(new SecretFile());
  KILN_ASSIGN_OR_RETURN(f->dir_, TempDir::Create("secret-", worker.TempRoot()));
  if (::chmod(f->dir_.path().c_str(), 0711) != 0) {
    return ErrnoStatus(StrCat("chmod ", Quote(f->dir_.path())));
  }
  std::vector<snapshotter::Mount> tmpfs = {
      {"tmpfs", "tmpfs", "", {"nodev", "nosuid", "noexec", "mode=0711", "size=16m"}}};
  KILN_ASSIGN_OR_RETURN(f->tmpfs_, snapshotter::ScopedMount::MountAll(tmpfs, f->dir_.path()));
  f->path_ = StrCat(f->dir_.path(), "/secret");
  UniqueFd fd(::open(f->path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return ErrnoStatus("create secret file");
  for (size_t off = 0; off < data.size();) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write secret file");
    }
    off += static_cast<size_t>(n);
  }
  if (::fchown(fd.get(), uid, gid) != 0) return ErrnoStatus("chown secret file");
  if (::fchmod(fd.get(), mode & 0777) != 0) return ErrnoStatus("chmod secret file");
  return f;
}

SecretFile::~SecretFile() { (void)tmpfs_.Unmount(); }

// ---- ssh ----

namespace {

absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus("socket");
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(StrCat("socket path too long: ", Quote(path)));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus(StrCat("connect ", Quote(path)));
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SshRelay>> SshRelay::Start(Worker& worker,
                                                          const std::string& agent_socket,
                                                          uint32_t uid, uint32_t gid,
                                                          uint32_t mode) {
  std::unique_ptr<SshRelay> r(new SshRelay());
  r->agent_ = agent_socket;
  KILN_ASSIGN_OR_RETURN(r->dir_, TempDir::Create("ssh-", worker.TempRoot()));
  if (::chmod(r->dir_.path().c_str(), 0711) != 0) {
    return ErrnoStatus(StrCat("chmod ", Quote(r->dir_.path())));
  }
  r->path_ = StrCat(r->dir_.path(), "/agent.sock");
  r->listen_.Reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!r->listen_) return ErrnoStatus("socket");
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (r->path_.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(StrCat("socket path too long: ", Quote(r->path_)));
  }
  std::memcpy(addr.sun_path, r->path_.c_str(), r->path_.size() + 1);
  if (::bind(r->listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus(StrCat("bind ", Quote(r->path_)));
  }
  if (::chown(r->path_.c_str(), uid, gid) != 0) return ErrnoStatus("chown ssh socket");
  if (::chmod(r->path_.c_str(), mode & 0777) != 0) return ErrnoStatus("chmod ssh socket");
  if (::listen(r->listen_.get(), 16) != 0) return ErrnoStatus("listen");
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return ErrnoStatus("pipe");
  r->stop_read_.Reset(p[0]);
  r->stop_write_.Reset(p[1]);
  SshRelay* self = r.get();
  r->acceptor_ = std::thread([self] { self->AcceptLoop(); });
  return r;
}

void SshRelay::AcceptLoop() {
  for (;;) {
    pollfd fds[2] = {{listen_.get(), POLLIN, 0}, {stop_read_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    UniqueFd client(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client) continue;
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back([this, c = client.Release()]() mutable { Relay(UniqueFd(c)); });
  }
}

void SshRelay::Relay(UniqueFd client) {
  auto agent = ConnectUnix(agent_);
  if (!agent.ok()) return;
  int a = client.get(), b = agent->get();
  char buf[16384];
  for (;;) {
    pollfd fds[3] = {{a, POLLIN, 0}, {b, POLLIN, 0}, {stop_read_.get(), POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[2].revents) return;
    for (int i = 0; i < 2; ++i) {
      if (!fds[i].revents) continue;
      int from = i == 0 ? a : b, to = i == 0 ? b : a;
      ssize_t n = ::read(from, buf, sizeof(buf));
      if (n <= 0) return;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
        if (w <= 0) return;
        off += w;
      }
    }
  }
}

SshRelay::~SshRelay() {
  stop_write_.Reset();  // wakes every poll with POLLHUP
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
}

}  // namespace kiln::engine
