#include "vision/media_source.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "reference.h"
#include "vision/image_decode.h"

namespace loom::vision {
namespace {

std::string as_string(const std::vector<uint8_t>& v) {
  return {v.begin(), v.end()};
}

TEST(Base64, DecodesTheRfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"Zg==", "f"},
                                                         {"Zm8=", "fo"},
                                                         {"Zm9v", "foo"},
                                                         {"Zm9vYg==", "foob"},
                                                         {"Zm9vYmE=", "fooba"},
                                                         {"Zm9vYmFy", "foobar"}};
  for (const auto& [encoded, plain] : vectors) EXPECT_EQ(as_string(decode_base64(encoded, 100)), plain) << encoded;
  EXPECT_EQ(decode_base64("+/+/", 10), (std::vector<uint8_t>{0xFB, 0xFF, 0xBF}));
}

TEST(Base64, IsStrict) {
  for (const char* bad : {"Zm9", "Zm9v!", "Zm 9v", "Zm9v\n", "Z===", "Zm=v", "Zh==", "-_8="}) {
    EXPECT_THROW(decode_base64(bad, 100), Error) << bad;
  }
  EXPECT_THROW(decode_base64("Zm9vYmFy", 5), Error);  // 6 bytes over a 5-byte cap
  EXPECT_NO_THROW(decode_base64("Zm9vYmFy", 6));
}

class MediaSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<testing::TempDir>();
    media_ = dir_->path() / "media";
    std::filesystem::create_directories(media_ / "sub");
    testing::write_bytes(media_ / "sub" / "a.png", "PNGDATA", 7);
    testing::write_bytes(dir_->path() / "secret.png", "SECRET", 6);
    options_.media_dir = media_;
  }
  std::unique_ptr<testing::TempDir> dir_;
  std::filesystem::path media_;
  MediaOptions options_;
};

TEST_F(MediaSourceTest, DataUrlsAndRawBase64) {
  const MediaSource data = resolve_media("data:image/png;base64,Zm9vYmFy", options_);
  EXPECT_EQ(data.kind, MediaSource::Kind::kBytes);
  EXPECT_EQ(as_string(data.bytes), "foobar");
  EXPECT_EQ(data.claimed_type, "image/png");
  EXPECT_EQ(as_string(resolve_media("Zm9vYmFy", options_).bytes), "foobar");
  EXPECT_THROW(resolve_media("data:image/png,Zm9v", options_), Error);         // not base64
  EXPECT_THROW(resolve_media("data:text/html;base64,Zm9v", options_), Error);  // not an image type
  EXPECT_THROW(resolve_media("data:image/png;base64,Zm9v$", options_), Error);
  MediaOptions small = options_;
  small.max_bytes = 3;
  EXPECT_THROW(resolve_media("data:image/png;base64,Zm9vYmFy", small), Error);
}

TEST_F(MediaSourceTest, RealImageThroughADataUrlDecodes) {
  // base64 of a 1x1 RGB PNG with pixel (255, 0, 0), produced by PIL.
  const char* png =
      "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/"
      "pLvAAAAAElFTkSuQmCC";
  const Image image = decode_image(resolve_media(png, options_).bytes);
  EXPECT_EQ(image.pixels, (std::vector<uint8_t>{255, 0, 0}));
}

TEST_F(MediaSourceTest, RemoteUrlsAreMarkedNotFetched) {
  const MediaSource remote = resolve_media("https://example.com/cat.png", options_);
  EXPECT_EQ(remote.kind, MediaSource::Kind::kRemote);
  EXPECT_EQ(remote.url, "https://example.com/cat.png");
  EXPECT_TRUE(remote.bytes.empty());
  EXPECT_THROW(resolve_media("ftp://example.com/cat.png", options_), Error);
  EXPECT_THROW(resolve_media("", options_), Error);
}

TEST_F(MediaSourceTest, LocalFilesInsideTheMediaFolder) {
  EXPECT_EQ(as_string(resolve_media("file://" + (media_ / "sub/a.png").string(), options_).bytes), "PNGDATA");
  EXPECT_EQ(as_string(resolve_media("sub/a.png", options_).bytes), "PNGDATA");
  EXPECT_EQ(as_string(resolve_media("sub/../sub/a.png", options_).bytes), "PNGDATA");
  try {
    resolve_media("sub/missing.png", options_);
    ADD_FAILURE() << "missing file accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
  }
  MediaOptions disabled;
  EXPECT_THROW(resolve_media("sub/a.png", disabled), Error);
}

TEST_F(MediaSourceTest, RefusesEscapesFromTheMediaFolder) {
  auto refused = [&](const std::string& ref) {
    try {
      resolve_media(ref, options_);
    } catch (const Error& e) {
      return e.kind() == ErrorKind::kInvalidRequest;
    }
    return false;
  };
  EXPECT_TRUE(refused("../secret.png"));
  EXPECT_TRUE(refused("sub/../../secret.png"));
  EXPECT_TRUE(refused("file://" + (dir_->path() / "secret.png").string()));
  EXPECT_TRUE(refused("file://" + (media_ / ".." / "secret.png").string()));
  // A symlink inside the folder pointing outside, to a file and to a directory.
  std::filesystem::create_symlink(dir_->path() / "secret.png", media_ / "link.png");
  std::filesystem::create_directory_symlink(dir_->path(), media_ / "up");
  EXPECT_TRUE(refused("link.png"));
  EXPECT_TRUE(refused("up/secret.png"));
  // A sibling folder whose name merely starts with the media folder's name.
  std::filesystem::create_directories(dir_->path() / "media2");
  testing::write_bytes(dir_->path() / "media2" / "x.png", "X", 1);
  EXPECT_TRUE(refused("../media2/x.png"));
  // Symlinks that stay inside are fine; directories are not files.
  std::filesystem::create_symlink(media_ / "sub" / "a.png", media_ / "inside.png");
  EXPECT_EQ(as_string(resolve_media("inside.png", options_).bytes), "PNGDATA");
  EXPECT_TRUE(refused("sub"));
}

TEST_F(MediaSourceTest, LocalFileSizeIsCapped) {
  MediaOptions small = options_;
  small.max_bytes = 6;
  EXPECT_THROW(resolve_media("sub/a.png", small), Error);
}

}  // namespace
}  // namespace loom::vision
