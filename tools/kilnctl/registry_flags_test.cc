// kilnctl's registry credential flags (--registry-auth HOST=USER:PASSWORD, --registry-token
// HOST=TOKEN) and how they combine with ~/.docker/config.json.
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "base/fs.h"
#include "base/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "registry/credentials.h"
#include "tools/kilnctl/commands.h"

namespace kiln::tools::kilnctl {
namespace {

using testing::HasSubstr;
using testing::Not;

registry::Credential Lookup(const std::shared_ptr<registry::CredentialSource>& source,
                            const std::string& host) {
  EXPECT_NE(source, nullptr);
  if (source == nullptr) return registry::Credential();
  auto c = source->Lookup(host);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : registry::Credential();
}

// Points DOCKER_CONFIG at a directory of the test's own for the test's duration.
class RegistryFlagsTest : public testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("kilnctl-flags-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = std::make_unique<TempDir>(std::move(*dir));
    const char* old = std::getenv("DOCKER_CONFIG");
    if (old != nullptr) old_docker_config_ = old;
    ::setenv("DOCKER_CONFIG", dir_->path().c_str(), 1);
  }
  void TearDown() override {
    if (old_docker_config_) {
      ::setenv("DOCKER_CONFIG", old_docker_config_->c_str(), 1);
    } else {
      ::unsetenv("DOCKER_CONFIG");
    }
  }

  void WriteConfig(const std::string& host, const std::string& user, const std::string& pass) {
    std::string auth = absl::Base64Escape(StrCat(user, ":", pass));
    ASSERT_TRUE(WriteFileAtomic(StrCat(dir_->path(), "/config.json"),
                                StrCat(R"({"auths":{")", host, R"(":{"auth":")", auth, R"("}}})"),
                                0600)
                    .ok());
  }

  Context ctx_;
  std::unique_ptr<TempDir> dir_;
  std::optional<std::string> old_docker_config_;
};

TEST_F(RegistryFlagsTest, NoFlagsAndNoConfigGiveNoSource) {
  auto creds = RequestCredentials(ctx_, {}, {});
  ASSERT_TRUE(creds.ok()) << creds.status();
  EXPECT_EQ(*creds, nullptr);
}

TEST_F(RegistryFlagsTest, AuthAndTokenFlagsPerHost) {
  auto creds = FlagCredentials(ctx_, {"127.0.0.1:5000=alice:pa:ss=word"},
                               {"https://index.docker.io/v1/=refresh-tok"});
  ASSERT_TRUE(creds.ok()) << creds.status();
  registry::Credential local = Lookup(*creds, "127.0.0.1:5000");
  EXPECT_EQ(local.username, "alice");
  EXPECT_EQ(local.password, "pa:ss=word");  // everything after the first colon
  registry::Credential hub = Lookup(*creds, "docker.io");
  EXPECT_EQ(hub.identity_token, "refresh-tok");
  EXPECT_TRUE(Lookup(*creds, "ghcr.io").empty());
}

TEST_F(RegistryFlagsTest, CommandFlagsWinOverGlobalOnes) {
  ctx_.registry_auth = {"r.example=global:one", "other.example=g:two"};
  auto creds = FlagCredentials(ctx_, {"r.example=local:three"}, {});
  ASSERT_TRUE(creds.ok()) << creds.status();
  EXPECT_EQ(Lookup(*creds, "r.example").username, "local");
  EXPECT_EQ(Lookup(*creds, "other.example").username, "g");
}

TEST_F(RegistryFlagsTest, FlagsComeBeforeTheDockerConfig) {
  WriteConfig("r.example", "config-user", "config-pass");
  {
    auto creds = RequestCredentials(ctx_, {}, {});
    ASSERT_TRUE(creds.ok()) << creds.status();
    EXPECT_EQ(Lookup(*creds, "r.example").username, "config-user");
  }
  auto creds = RequestCredentials(ctx_, {"r.example=flag-user:flag-pass"}, {});
  ASSERT_TRUE(creds.ok()) << creds.status();
  EXPECT_EQ(Lookup(*creds, "r.example").username, "flag-user");
  // A host the flags do not name still gets the config's.
  WriteConfig("other.example", "config-user", "config-pass");
  auto other = RequestCredentials(ctx_, {"r.example=flag-user:flag-pass"}, {});
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(Lookup(*other, "other.example").username, "config-user");
}

TEST_F(RegistryFlagsTest, MalformedFlagsNameTheFormButNotTheValue) {
  for (const std::string& bad :
       {std::string("r.example-secretvalue"), std::string("=user:secretvalue"),
        std::string("r.example=secretvalue"), std::string("r.example=:secretvalue")}) {
    auto creds = FlagCredentials(ctx_, {bad}, {});
    ASSERT_FALSE(creds.ok()) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(creds.status()));
    EXPECT_THAT(creds.status().message(), HasSubstr("HOST=USER:PASSWORD"));
    EXPECT_THAT(creds.status().message(), Not(HasSubstr("secretvalue")));
    EXPECT_THAT(creds.status().message(), Not(HasSubstr("r.example")));
  }
  for (const std::string& bad : {std::string("secretvalue"), std::string("r.example=")}) {
    auto creds = FlagCredentials(ctx_, {}, {bad});
    ASSERT_FALSE(creds.ok()) << bad;
    EXPECT_THAT(creds.status().message(), HasSubstr("HOST=TOKEN"));
    EXPECT_THAT(creds.status().message(), Not(HasSubstr("secretvalue")));
  }
}

TEST_F(RegistryFlagsTest, MalformedDockerConfigIsAnErrorWithoutItsContent) {
  ASSERT_TRUE(
      WriteFileAtomic(StrCat(dir_->path(), "/config.json"), "{\"auths\": secretvalue", 0600).ok());
  auto creds = RequestCredentials(ctx_, {}, {});
  ASSERT_FALSE(creds.ok());
  EXPECT_THAT(creds.status().message(), Not(HasSubstr("secretvalue")));
}

std::vector<std::string> Secrets(std::vector<const char*> args) {
  args.insert(args.begin(), "kilnctl");
  return CommandLineSecrets(static_cast<int>(args.size()), args.data());
}

TEST(CommandLineSecrets, ValuesAndTheirSecretParts) {
  EXPECT_THAT(
      Secrets({"--registry-auth", "r.example=alice:hunter22", "image", "inspect", "x"}),
      testing::UnorderedElementsAre("r.example=alice:hunter22", "alice:hunter22", "hunter22"));
  EXPECT_THAT(Secrets({"image", "pull", "--registry-token=r.example=tok-1234", "ref"}),
              testing::UnorderedElementsAre("r.example=tok-1234", "tok-1234"));
  EXPECT_THAT(Secrets({"build", "--output", "type=image"}), testing::IsEmpty());
}

TEST(CommandLineSecrets, TheArgumentAfterAValueTypedWithASpace) {
  EXPECT_THAT(Secrets({"build", "--registry-auth", "r.example", "alice:hunter22"}),
              testing::Contains("alice:hunter22"));
  EXPECT_THAT(Secrets({"build", "--registry-token=r.example=", "tok-1234"}),
              testing::Contains("tok-1234"));
  // A well-formed value does not make the next argument a secret.
  EXPECT_THAT(Secrets({"--registry-auth", "r.example=alice:hunter22", "image"}),
              Not(testing::Contains("image")));
}

TEST(RedactSecrets, ReplacesEveryOccurrenceLongestFirst) {
  std::vector<std::string> secrets = Secrets({"--registry-auth", "r.example=alice:hunter22"});
  EXPECT_EQ(RedactSecrets("unexpected: alice:hunter22, again hunter22hunter22", secrets),
            "unexpected: <redacted>, again <redacted><redacted>");
  EXPECT_EQ(RedactSecrets("nothing here", secrets), "nothing here");
}

}  // namespace
}  // namespace kiln::tools::kilnctl
