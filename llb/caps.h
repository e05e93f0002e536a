// Well-known strings of the LLB wire format: capability ids (OpMetadata.caps, the LLB caps a
// daemon advertises) and SourceOp attribute keys.
//
// The values are BuildKit's, byte for byte (including its "soruce.http.uidgid" typo), because
// they are hashed into nothing but compared by daemons: a cap a daemon does not know makes it
// refuse the definition.
#pragma once

namespace kiln::llb {

// Source caps.
inline constexpr char kCapSourceImage[] = "source.image";
inline constexpr char kCapSourceImageResolveMode[] = "source.image.resolvemode";
inline constexpr char kCapSourceImageLayerLimit[] = "source.image.layerlimit";
inline constexpr char kCapSourceLocal[] = "source.local";
inline constexpr char kCapSourceLocalUnique[] = "source.local.unique";
inline constexpr char kCapSourceLocalSessionID[] = "source.local.sessionid";
inline constexpr char kCapSourceLocalIncludePatterns[] = "source.local.includepatterns";
inline constexpr char kCapSourceLocalFollowPaths[] = "source.local.followpaths";
inline constexpr char kCapSourceLocalExcludePatterns[] = "source.local.excludepatterns";
inline constexpr char kCapSourceLocalSharedKeyHint[] = "source.local.sharedkeyhint";
inline constexpr char kCapSourceLocalDiffer[] = "source.local.differ";
inline constexpr char kCapSourceGit[] = "source.git";
inline constexpr char kCapSourceGitKeepDir[] = "source.git.keepgitdir";
inline constexpr char kCapSourceGitFullURL[] = "source.git.fullurl";
inline constexpr char kCapSourceGitHTTPAuth[] = "source.git.httpauth";
inline constexpr char kCapSourceGitKnownSSHHosts[] = "source.git.knownsshhosts";
inline constexpr char kCapSourceGitMountSSHSock[] = "source.git.mountsshsock";
inline constexpr char kCapSourceGitSubdir[] = "source.git.subdir";
inline constexpr char kCapSourceHTTP[] = "source.http";
inline constexpr char kCapSourceHTTPChecksum[] = "source.http.checksum";
inline constexpr char kCapSourceHTTPPerm[] = "source.http.perm";
inline constexpr char kCapSourceHTTPUIDGID[] = "soruce.http.uidgid";  // sic, as BuildKit
inline constexpr char kCapSourceOCILayout[] = "source.ocilayout";
inline constexpr char kCapBuildOpLLBFileName[] = "source.buildop.llbfilename";

// Exec caps.
inline constexpr char kCapExecMetaBase[] = "exec.meta.base";
inline constexpr char kCapExecMetaCgroupParent[] = "exec.meta.cgroup.parent";
inline constexpr char kCapExecMetaNetwork[] = "exec.meta.network";
inline constexpr char kCapExecMetaProxy[] = "exec.meta.proxyenv";
inline constexpr char kCapExecMetaSecurity[] = "exec.meta.security";
inline constexpr char kCapExecMetaSecurityDeviceWhitelistV1[] = "exec.meta.security.devices.v1";
inline constexpr char kCapExecMetaSetsDefaultPath[] = "exec.meta.setsdefaultpath";
inline constexpr char kCapExecMetaUlimit[] = "exec.meta.ulimit";
inline constexpr char kCapExecMetaRemoveMountStubsRecursive[] =
    "exec.meta.removemountstubs.recursive";
inline constexpr char kCapExecMountBind[] = "exec.mount.bind";
inline constexpr char kCapExecMountBindReadWriteNoOutput[] = "exec.mount.bind.readwrite-nooutput";
inline constexpr char kCapExecMountCache[] = "exec.mount.cache";
inline constexpr char kCapExecMountCacheSharing[] = "exec.mount.cache.sharing";
inline constexpr char kCapExecMountSelector[] = "exec.mount.selector";
inline constexpr char kCapExecMountTmpfs[] = "exec.mount.tmpfs";
inline constexpr char kCapExecMountTmpfsSize[] = "exec.mount.tmpfs.size";
inline constexpr char kCapExecMountSecret[] = "exec.mount.secret";
inline constexpr char kCapExecMountSSH[] = "exec.mount.ssh";
inline constexpr char kCapExecCgroupsMounted[] = "exec.cgroup";
inline constexpr char kCapExecSecretEnv[] = "exec.secretenv";
inline constexpr char kCapExecValidExitCode[] = "exec.validexitcode";  // BuildKit HEAD

// File caps.
inline constexpr char kCapFileBase[] = "file.base";
inline constexpr char kCapFileRmWildcard[] = "file.rm.wildcard";
inline constexpr char kCapFileCopyIncludeExcludePatterns[] = "file.copy.includeexcludepatterns";
inline constexpr char kCapFileRmNoFollowSymlink[] = "file.rm.nofollowsymlink";
inline constexpr char kCapFileSymlinkCreate[] = "file.symlink.create";  // BuildKit HEAD

// Definition-level caps (recorded on the terminal op).
inline constexpr char kCapConstraints[] = "constraints";
inline constexpr char kCapPlatform[] = "platform";
inline constexpr char kCapMetaIgnoreCache[] = "meta.ignorecache";
inline constexpr char kCapMetaDescription[] = "meta.description";
inline constexpr char kCapMetaExportCache[] = "meta.exportcache";

inline constexpr char kCapMergeOp[] = "mergeop";
inline constexpr char kCapDiffOp[] = "diffop";

// SourceOp attribute keys.
inline constexpr char kAttrKeepGitDir[] = "git.keepgitdir";
inline constexpr char kAttrFullRemoteURL[] = "git.fullurl";
inline constexpr char kAttrAuthHeaderSecret[] = "git.authheadersecret";
inline constexpr char kAttrAuthTokenSecret[] = "git.authtokensecret";
inline constexpr char kAttrKnownSSHHosts[] = "git.knownsshhosts";
inline constexpr char kAttrMountSSHSock[] = "git.mountsshsock";
inline constexpr char kAttrLocalSessionID[] = "local.session";
inline constexpr char kAttrLocalUniqueID[] = "local.unique";
inline constexpr char kAttrIncludePatterns[] = "local.includepattern";
inline constexpr char kAttrFollowPaths[] = "local.followpaths";
inline constexpr char kAttrExcludePatterns[] = "local.excludepatterns";
inline constexpr char kAttrSharedKeyHint[] = "local.sharedkeyhint";
inline constexpr char kAttrLocalDiffer[] = "local.differ";
inline constexpr char kAttrLocalDifferNone[] = "none";
inline constexpr char kAttrLocalDifferMetadata[] = "metadata";
inline constexpr char kAttrLLBDefinitionFilename[] = "llbbuild.filename";
inline constexpr char kAttrHTTPChecksum[] = "http.checksum";
inline constexpr char kAttrHTTPFilename[] = "http.filename";
inline constexpr char kAttrHTTPPerm[] = "http.perm";
inline constexpr char kAttrHTTPUID[] = "http.uid";
inline constexpr char kAttrHTTPGID[] = "http.gid";
inline constexpr char kAttrImageResolveMode[] = "image.resolvemode";
inline constexpr char kAttrImageResolveModeDefault[] = "default";
inline constexpr char kAttrImageResolveModeForcePull[] = "pull";
inline constexpr char kAttrImageResolveModePreferLocal[] = "local";
inline constexpr char kAttrImageRecordType[] = "image.recordtype";
inline constexpr char kAttrImageLayerLimit[] = "image.layerlimit";
inline constexpr char kAttrOCILayoutSessionID[] = "oci.session";
inline constexpr char kAttrOCILayoutStoreID[] = "oci.store";
inline constexpr char kAttrOCILayoutLayerLimit[] = "oci.layerlimit";

// Description keys.
inline constexpr char kCustomNameKey[] = "llb.customname";

// The mount target of an exec's root filesystem.
inline constexpr char kRootMount[] = "/";

}  // namespace kiln::llb
