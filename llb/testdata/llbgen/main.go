// kiln-llbgen: writes LLB definitions made with BuildKit's Go client (client/llb) for Kiln's
// compatibility tests.  Build inside a BuildKit v0.11.6 checkout:
//   cp -r llbgen <buildkit>/examples/kiln-llbgen
//   cd <buildkit> && GOFLAGS=-mod=vendor go run ./examples/kiln-llbgen <outdir>
// Every case marshals with a fixed platform and local unique id so the output is reproducible
// (apart from op order where Go iterates a map).
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/util/apicaps"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

var amd64 = ocispecs.Platform{OS: "linux", Architecture: "amd64"}
var arm64 = ocispecs.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}

func sources() (llb.State, []llb.ConstraintsOpt) {
	img := llb.Image("alpine", llb.ResolveModeForcePull, llb.WithLayerLimit(2), llb.MarkImageInternal, llb.Platform(arm64), llb.WithCustomName("alpine"))
	pinned := llb.Image("ubuntu@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", llb.ResolveModePreferLocal)
	tagged := llb.Image("localhost:5000/foo/bar:v1")
	local := llb.Local("ctx", llb.SessionID("sess1"), llb.IncludePatterns([]string{"*.go", "a<b>&c"}), llb.ExcludePatterns([]string{"vendor/", "\u2028x\u00e9"}), llb.FollowPaths([]string{"go.mod"}), llb.SharedKeyHint("hint"), llb.Differ(llb.DiffMetadata, true))
	local2 := llb.Local("other", llb.Differ(llb.DiffNone, false))
	git1 := llb.Git("https://github.com/moby/buildkit.git#main", "v0.11.6", llb.KeepGitDir(), llb.AuthTokenSecret("tok"))
	git2 := llb.Git("git@github.com:moby/buildkit.git", "", llb.KnownSSHHosts("github.com ssh-ed25519 AAAA\n"), llb.KnownSSHHosts("other key"), llb.MountSSHSock("sock"))
	git3 := llb.Git("github.com/foo/bar", "ref:sub", llb.AuthHeaderSecret("hdr"))
	git4 := llb.Git("ssh://user@host.example:2222/repo.git", "main", llb.KnownSSHHosts("k"))
	http := llb.HTTP("https://example.com/x.tgz", llb.Checksum(digest.FromString("x")), llb.Chmod(0644), llb.Chown(1, 2), llb.Filename("y.tgz"))
	http2 := llb.HTTP("http://example.com/plain")
	oci := llb.OCILayout("layout@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", llb.OCIStore("sess", "store"), llb.OCILayerLimit(3))
	return llb.Merge([]llb.State{img, pinned, tagged, local, local2, git1, git2, git3, git4, http, http2, oci}), nil
}

func execFull() (llb.State, []llb.ConstraintsOpt) {
	base := llb.Image("busybox").AddEnv("A", "1").AddEnv("B", "2").AddEnv("A", "3").Dir("/w").Dir("sub/../x").User("u:g").Hostname("hn")
	es := base.Run(
		llb.Args([]string{"sh", "-c", "echo"}),
		llb.AddExtraHost("h1", net.ParseIP("::ffff:10.0.0.1")),
		llb.AddExtraHost("h2", net.ParseIP("fe80::1:0:0:2")),
		llb.AddExtraHost("h3", net.ParseIP("::1.2.3.4")),
		llb.AddUlimit(llb.UlimitNofile, 1024, 2048),
		llb.WithCgroupParent("cg"),
		llb.WithProxy(llb.ProxyEnv{HTTPProxy: "http://p", HTTPSProxy: "https://p", FTPProxy: "ftp://p", NoProxy: "localhost", AllProxy: "all"}),
		llb.Network(llb.NetModeHost),
		llb.Security(llb.SecurityModeInsecure),
		llb.AddSecret("/run/secrets/a", llb.SecretID("a"), llb.SecretFileOpt(1, 2, 0400)),
		llb.AddSecret("ENVVAR", llb.SecretID("b"), llb.SecretAsEnv(true), llb.SecretOptional),
		llb.AddSecret("/run/secrets/c"),
		llb.AddSSHSocket(llb.SSHID("x"), llb.SSHSocketTarget("/tmp/s")),
		llb.AddSSHSocket(llb.SSHOptional),
		llb.AddMount("/cache", llb.Scratch(), llb.AsPersistentCacheDir("c1", llb.CacheMountPrivate)),
		llb.AddMount("/tmp", llb.Scratch(), llb.Tmpfs(llb.TmpfsSize(1<<20))),
		llb.AddMount("/tmp2", llb.Scratch(), llb.Tmpfs()),
		llb.AddMount("/data", llb.Local("data"), llb.SourcePath("/sub"), llb.Readonly),
		llb.AddMount("/out", llb.Scratch()),
		llb.AddMount("/abs", llb.Image("busybox"), llb.ForceNoOutput),
		llb.AddMount("/b", llb.Image("busybox")),
		llb.IgnoreCache,
		llb.WithCustomName("run it"),
		llb.ProgressGroup("pg", "group", false),
		llb.WithExportCache(),
		llb.Require("label=x"),
		llb.Platform(arm64),
	)
	late := es.AddMount("/late", llb.Image("alpine"))
	return llb.Merge([]llb.State{es.Root(), es.GetMount("/out"), late, es.GetMount("/b")}), []llb.ConstraintsOpt{llb.WithCaps(pb.Caps.CapSet(pb.Caps.All()))}
}

func execDefaultPath() (llb.State, []llb.ConstraintsOpt) {
	caps := apicaps.CapList{}
	caps.Init(apicaps.Cap{ID: pb.CapExecMetaBase, Enabled: true})
	st := llb.Image("busybox").AddEnv("X", "y").Run(llb.Shlex("true"), llb.ReadonlyRootFS()).Root()
	st2 := llb.Scratch().Run(llb.Args([]string{"/bin/true"}), llb.AddMount("/m", st, llb.Readonly)).GetMount("/m")
	return llb.Merge([]llb.State{st, st2, llb.Image("busybox").Run(llb.Args([]string{"x"})).Root()}), []llb.ConstraintsOpt{llb.WithCaps(caps.CapSet(caps.All())), llb.Platform(ocispecs.Platform{OS: "windows", Architecture: "amd64"})}
}

func fileChain() (llb.State, []llb.ConstraintsOpt) {
	mode := os.FileMode(0755)
	t := time.Unix(1000, 5)
	src := llb.Local("src").Dir("/in")
	fa := llb.Mkdir("sub", 0750|os.ModeDir, llb.WithParents(true), llb.WithUser("app:grp"), llb.WithCreatedTime(t)).
		Mkfile("sub/f", 0600, []byte("data<>&\x00\xff"), llb.WithUIDGID(1, 2)).
		Rm("old/*", llb.WithAllowNotFound(true), llb.WithAllowWildcard(true)).
		Copy(src, "a/../b/", "dst/.", &llb.CopyInfo{Mode: &mode, IncludePatterns: []string{"*.c"}, ExcludePatterns: []string{"x"}, AttemptUnpack: true, CreatedTime: &t}, llb.WithUser("1000")).
		Copy(llb.Mkdir("/x", 0755).Mkfile("x/f", 0644, nil).WithState(llb.Scratch().Dir("/y")), "x", "z/").
		Copy(src, "/abs", "rel", llb.WithUser("root:-5")).
		Mkdir("/dir/", 0777, llb.WithUser(""))
	st := llb.Image("alpine").Dir("/work").File(fa, llb.WithCustomName("file chain"))
	st2 := llb.Scratch().File(llb.Mkfile("/etc/passwd", 0644, []byte("root"), llb.WithUser("nobody:nogroup")))
	st3 := st2.File(llb.Copy(st, "/work", "/", &llb.CopyInfo{CopyDirContentsOnly: true}).Copy(st2, ".", "./"))
	return llb.Merge([]llb.State{st, st3}), nil
}

func diffs() (llb.State, []llb.ConstraintsOpt) {
	a := llb.Image("busybox")
	b := a.Run(llb.Args([]string{"touch", "/x"})).Root()
	d1 := llb.Diff(a, b, llb.WithCustomName("diff"))
	d2 := llb.Diff(llb.Scratch(), b)
	d3 := llb.Diff(b, llb.Scratch())
	d4 := llb.Diff(llb.Scratch(), llb.Scratch())
	m := llb.Merge([]llb.State{d1, d2, d3, d4, llb.Scratch()})
	return m, nil
}

func sourceMaps() (llb.State, []llb.ConstraintsOpt) {
	df := llb.Local("dockerfile", llb.SessionID("s"))
	sm := llb.NewSourceMap(&df, "Dockerfile", []byte("FROM busybox\nRUN true\n"))
	sm2 := llb.NewSourceMap(nil, "other.txt", []byte("x"))
	r := func(l1, c1, l2, c2 int32) *pb.Range {
		return &pb.Range{Start: pb.Position{Line: l1, Character: c1}, End: pb.Position{Line: l2, Character: c2}}
	}
	st := llb.Image("busybox", sm.Location([]*pb.Range{r(1, 0, 1, 12)}))
	st = st.Run(llb.Args([]string{"true"}), sm.Location([]*pb.Range{r(2, 0, 2, 8), r(3, 1, 0, 0)}), sm2.Location([]*pb.Range{r(0, 0, 0, 0)})).Root()
	st = st.File(llb.Mkdir("/a", 0755), sm2.Location(nil))
	return st, []llb.ConstraintsOpt{llb.WithDescription(map[string]string{"top": "level"})}
}

func main() {
	out := os.Args[1]
	cases := map[string]func() (llb.State, []llb.ConstraintsOpt){
		"go_sources":     sources,
		"go_exec":        execFull,
		"go_exec_path":   execDefaultPath,
		"go_file":        fileChain,
		"go_diff":        diffs,
		"go_sourcemap":   sourceMaps,
	}
	for name, fn := range cases {
		st, opts := fn()
		opts = append([]llb.ConstraintsOpt{llb.Platform(amd64), llb.LocalUniqueID("kilntestunique")}, opts...)
		def, err := st.Marshal(context.TODO(), opts...)
		if err != nil {
			fmt.Fprintln(os.Stderr, name, err)
			os.Exit(1)
		}
		f, err := os.Create(filepath.Join(out, name+".pb"))
		if err != nil {
			panic(err)
		}
		if err := llb.WriteTo(def, f); err != nil {
			panic(err)
		}
		f.Close()
	}
}
