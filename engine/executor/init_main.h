// kiln-init: the helper that LinuxExecutor clone3()s into a step's new namespaces.
//
// It runs single-threaded as PID 1 of the step's pid namespace, so everything the sandbox
// needs (mounting, user lookup, capability changes) is done with ordinary code instead of the
// async-signal-safe subset a multi-threaded daemon is limited to after fork.  In order:
//   1. reads the spec (init_protocol.h) and makes the whole mount tree a slave of the host's, so
//      no mount made here propagates out;
//   2. mounts the root filesystem on the run's private directory, notes BuildKit's mount stubs,
//      mounts /proc, /dev (tmpfs, devpts, shm, mqueue), /sys (read-only), /etc/resolv.conf,
//      /etc/hosts, /sys/fs/cgroup and the caller's mounts, each target resolved inside the root;
//   3. pivot_root()s into it and detaches the old root; masks and write-protects BuildKit's
//      masked and read-only /proc and /sys paths; sets the hostname; brings up loopback;
//   4. resolves the user, creates the working directory, forks the process, which drops to the
//      identity and capability sets and execs;
//   5. reaps every orphan until the process exits, kills what is left, unmounts and removes the
//      mount stubs, reports the outcome on fd 4 and exits (taking the namespace with it).
#pragma once

namespace kiln::engine {

// The whole program; tools/kiln-init's main() only calls this.
int InitMain(int argc, char** argv);

}  // namespace kiln::engine
