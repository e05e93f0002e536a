#include "registry/auth.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "absl/strings/escaping.h"
#include "base/fs.h"
#include "base/strings.h"
#include "registry/credentials.h"

namespace kiln::registry {
namespace {

TEST(ParseAuthChallenges, DockerHubBearer) {
  auto c = ParseAuthChallenges({R"(Bearer realm="https://auth.docker.io/token",)"
                                R"(service="registry.docker.io",)"
                                R"(scope="repository:samalba/my-app:pull,push")"});
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].params["realm"], "https://auth.docker.io/token");
  EXPECT_EQ(c[0].params["service"], "registry.docker.io");
  EXPECT_EQ(c[0].params["scope"], "repository:samalba/my-app:pull,push");
}

TEST(ParseAuthChallenges, SeveralChallengesEscapesAndTokens) {
  auto c = ParseAuthChallenges({R"(Basic realm="a \"quoted\" realm", Bearer Realm=https://x/t ,)"
                                R"( error="insufficient_scope")",
                                "Negotiate"});
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].scheme, "basic");
  EXPECT_EQ(c[0].params["realm"], "a \"quoted\" realm");
  EXPECT_EQ(c[1].scheme, "bearer");
  EXPECT_EQ(c[1].params["realm"], "https://x/t");
  EXPECT_EQ(c[1].params["error"], "insufficient_scope");
  EXPECT_EQ(c[2].scheme, "negotiate");
}

TEST(ParseAuthChallenges, GarbageDoesNotHang) {
  auto c = ParseAuthChallenges({"==,,\"", "Bearer realm=\"unterminated"});
  ASSERT_FALSE(c.empty());
  EXPECT_EQ(c.back().params["realm"], "unterminated");
}

TEST(Credential, RefreshTokenForIdentityTokenAndAcr) {
  Credential plain{"user", "pw", "", ""};
  EXPECT_EQ(plain.RefreshToken(), "");
  Credential acr{kAcrRefreshTokenUser, "acr-refresh-token", "", ""};
  EXPECT_EQ(acr.RefreshToken(), "acr-refresh-token");
  Credential identity{"", "", "oauth-refresh", ""};
  EXPECT_EQ(identity.RefreshToken(), "oauth-refresh");
}

TEST(Credential, FingerprintHidesTheSecretAndDistinguishesCredentials) {
  Credential a{"user", "secret-password-1", "", ""};
  Credential b{"user", "secret-password-2", "", ""};
  EXPECT_EQ(a.Fingerprint().find("secret"), std::string::npos);
  EXPECT_NE(a.Fingerprint(), b.Fingerprint());
  EXPECT_EQ(Credential().Fingerprint(), "anonymous");
}

TEST(DockerConfig, ParsesAuthsIdentityTokensAndHelpers) {
  std::string auth = absl::Base64Escape("alice:pa:ss");
  std::string json = StrCat(R"({"auths": {)", R"("https://index.docker.io/v1/": {"auth": ")", auth,
                            R"("},)", R"("myreg.azurecr.io": {"identitytoken": "id-token"},)",
                            R"("http://local:5000/v2/": {"username": "u", "password": "p"},)",
                            R"("empty.example": {}},)",
                            R"("credHelpers": {"gcr.io": "gcloud"}, "credsStore": "desktop"})");
  auto config = ParseDockerConfig(json);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->auths["index.docker.io"].username, "alice");
  EXPECT_EQ(config->auths["index.docker.io"].password, "pa:ss");
  EXPECT_EQ(config->auths["myreg.azurecr.io"].identity_token, "id-token");
  EXPECT_EQ(config->auths["local:5000"].username, "u");
  EXPECT_EQ(config->auths.count("empty.example"), 0u);
  EXPECT_EQ(config->cred_helpers["gcr.io"], "gcloud");
  EXPECT_EQ(config->creds_store, "desktop");
}

TEST(DockerConfig, BadAuthNamesTheHostNotTheContent) {
  auto config = ParseDockerConfig(R"({"auths": {"r.example": {"auth": "c2VjcmV0LW5vLWNvbG9u"}}})");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(std::string(config.status().message()).find("r.example"), std::string::npos);
  EXPECT_EQ(std::string(config.status().message()).find("c2VjcmV0"), std::string::npos);
  EXPECT_FALSE(ParseDockerConfig("[1,2]").ok());
  EXPECT_FALSE(ParseDockerConfig("{").ok());
}

TEST(NormalizeConfigHost, StripsSchemeAndPath) {
  EXPECT_EQ(NormalizeConfigHost("https://index.docker.io/v1/"), "index.docker.io");
  EXPECT_EQ(NormalizeConfigHost("http://r:5000/v2/"), "r:5000");
  EXPECT_EQ(NormalizeConfigHost("ghcr.io"), "ghcr.io");
}

// A real credential helper: a shell script in a temp dir, run by the exec runner.
class HelperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("kiln-cred-helper-");
    ASSERT_TRUE(dir.ok());
    dir_ = std::move(*dir);
    Write("docker-credential-kilntest",
          "#!/bin/sh\n"
          "[ \"$1\" = get ] || exit 3\n"
          "read server\n"
          "case \"$server\" in\n"
          "  https://index.docker.io/v1/) echo '{\"ServerURL\":\"hub\",\"Username\":\"hubuser\","
          "\"Secret\":\"hub-secret\"}' ;;\n"
          "  tok.example) echo '{\"Username\":\"<token>\",\"Secret\":\"identity-xyz\"}' ;;\n"
          "  broken.example) echo 'helper broke: printing-secret-here' ; exit 1 ;;\n"
          "  *) echo 'credentials not found in native keychain' ; exit 1 ;;\n"
          "esac\n");
  }
  void Write(const std::string& name, const std::string& text) {
    std::string path = StrCat(dir_.path(), "/", name);
    ASSERT_TRUE(WriteFileAtomic(path, text, 0755).ok());
  }
  TempDir dir_;
};

TEST_F(HelperTest, ConfigUsesCredHelpersThenStoreThenAuths) {
  auto config = ParseDockerConfig(
      R"({"auths": {"plain.example": {"username": "p", "password": "pw"}},)"
      R"( "credHelpers": {"tok.example": "kilntest", "broken.example": "kilntest"},)"
      R"( "credsStore": "kilntest"})");
  ASSERT_TRUE(config.ok());
  DockerConfigCredentials creds(
      *config, std::shared_ptr<CredentialHelperRunner>(NewExecHelperRunner(dir_.path())));
  auto hub = creds.Lookup("docker.io");
  ASSERT_TRUE(hub.ok()) << hub.status();
  EXPECT_EQ(hub->username, "hubuser");
  EXPECT_EQ(hub->password, "hub-secret");
  auto tok = creds.Lookup("tok.example");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(tok->identity_token, "identity-xyz");
  EXPECT_EQ(tok->RefreshToken(), "identity-xyz");
  // The store says "not found": the file's auths answer.
  auto plain = creds.Lookup("plain.example");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->username, "p");
  auto none = creds.Lookup("other.example");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  auto broken = creds.Lookup("broken.example");
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(std::string(broken.status().message()).find("printing-secret-here"), std::string::npos);
  EXPECT_NE(std::string(broken.status().message()).find("docker-credential-kilntest"),
            std::string::npos);
}

TEST_F(HelperTest, HelperThatIgnoresStdinDoesNotKillTheCaller) {
  // Exits before reading: writing the server URL must not raise SIGPIPE in this process.
  Write("docker-credential-rude", "#!/bin/sh\nexec 0<&-\nexit 1\n");
  auto runner = NewExecHelperRunner(dir_.path());
  for (int i = 0; i < 20; ++i) {
    auto out = runner->Get("rude", std::string(1 << 16, 'x'));
    EXPECT_FALSE(out.ok());
  }
}

TEST_F(HelperTest, DockerHubUnderEitherKey) {
  auto config =
      ParseDockerConfig(R"({"auths": {"docker.io": {"username": "short", "password": "form"}}})");
  ASSERT_TRUE(config.ok());
  DockerConfigCredentials creds(*config, nullptr);
  EXPECT_EQ(creds.Lookup("docker.io")->username, "short");
}

TEST_F(HelperTest, MissingHelperAndBadNames) {
  auto runner = NewExecHelperRunner(dir_.path());
  EXPECT_TRUE(absl::IsNotFound(runner->Get("absent", "x").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(runner->Get("../evil", "x").status()));
}

TEST(ChainCredentials, FirstNonEmptyWins) {
  auto call = std::make_shared<StaticCredentials>();
  call->Set("ghcr.io", Credential{"u", "ghp_token", "", ""});
  auto fallback = std::make_shared<StaticCredentials>();
  fallback->Set("ghcr.io", Credential{"other", "x", "", ""});
  fallback->Set("docker.io", Credential{"hub", "y", "", ""});
  ChainCredentials chain({call, fallback});
  EXPECT_EQ(chain.Lookup("ghcr.io")->password, "ghp_token");
  EXPECT_EQ(chain.Lookup("docker.io")->username, "hub");
  EXPECT_EQ(chain.Lookup("registry-1.docker.io")->username, "hub");
  EXPECT_TRUE(chain.Lookup("quay.io")->empty());
}

}  // namespace
}  // namespace kiln::registry
