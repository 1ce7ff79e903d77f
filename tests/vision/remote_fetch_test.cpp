// fetch_remote_image against a real HTTP server on loopback. The default address policy must refuse that server
// (loopback is not public); the other tests admit 127.0.0.1 only, so a redirect or name that leads anywhere else is
// refused before any connection, which is what the guard is for.

#include "vision/remote_fetch.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <string>
#include <thread>

#include "core/error.h"

namespace loom::vision {
namespace {

using ::testing::HasSubstr;

class LoopbackServer {
 public:
  LoopbackServer() {
    server_.Get("/image", [](const httplib::Request&, httplib::Response& response) {
      response.set_content(std::string(1000, 'x'), "image/png");
    });
    server_.Get("/big", [](const httplib::Request&, httplib::Response& response) {
      response.set_content(std::string(300000, 'x'), "image/png");
    });
    // No Content-Length: the body limit must hold while streaming, not only from the header.
    server_.Get("/big-chunked", [](const httplib::Request&, httplib::Response& response) {
      response.set_chunked_content_provider("image/png", [](size_t, httplib::DataSink& sink) {
        const std::string block(65536, 'x');
        for (int k = 0; k < 8; ++k) {
          if (!sink.write(block.data(), block.size())) return false;
        }
        sink.done();
        return true;
      });
    });
    server_.Get("/missing", [](const httplib::Request&, httplib::Response& response) { response.status = 404; });
    server_.Get("/slow", [](const httplib::Request&, httplib::Response& response) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      response.set_content("late", "image/png");
    });
    server_.Get(R"(/hop/(\d+))", [](const httplib::Request& request, httplib::Response& response) {
      const int left = std::stoi(request.matches[1]);
      response.set_redirect(left == 0 ? "/image" : "/hop/" + std::to_string(left - 1));
    });
    server_.Get("/to-private", [](const httplib::Request&, httplib::Response& response) {
      response.set_redirect("http://10.1.2.3/image");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~LoopbackServer() {
    server_.stop();
    thread_.join();
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  int port() const { return port_; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

RemoteFetchOptions loopback_only() {
  RemoteFetchOptions options;
  options.address_allowed = [](std::string_view address) { return address == "127.0.0.1"; };
  options.read_timeout = std::chrono::milliseconds(3000);
  return options;
}

std::string refusal(const std::string& url, const RemoteFetchOptions& options) {
  try {
    fetch_remote_image(url, options);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidRequest);
    return e.what();
  }
  ADD_FAILURE() << url << " was fetched";
  return {};
}

TEST(RemoteFetch, FetchesFromAnAllowedAddress) {
  LoopbackServer server;
  EXPECT_EQ(fetch_remote_image(server.url("/image"), loopback_only()).size(), 1000u);
}

TEST(RemoteFetch, DefaultPolicyRefusesLoopbackByAddressAndByName) {
  LoopbackServer server;
  EXPECT_THAT(refusal(server.url("/image"), {}), HasSubstr("not a public address"));
  EXPECT_THAT(refusal("http://localhost:" + std::to_string(server.port()) + "/image", {}),
              HasSubstr("not a public address"));
  EXPECT_THAT(refusal("http://[::1]:" + std::to_string(server.port()) + "/image", {}),
              HasSubstr("not a public address"));
}

TEST(RemoteFetch, FollowsAtMostTheConfiguredRedirects) {
  LoopbackServer server;
  EXPECT_EQ(fetch_remote_image(server.url("/hop/2"), loopback_only()).size(), 1000u);  // three redirects
  EXPECT_THAT(refusal(server.url("/hop/3"), loopback_only()), HasSubstr("redirects more than 3 times"));
}

TEST(RemoteFetch, ChecksEveryRedirectTarget) {
  LoopbackServer server;
  EXPECT_THAT(refusal(server.url("/to-private"), loopback_only()), HasSubstr("10.1.2.3"));
}

TEST(RemoteFetch, CutsOffBodiesOverTheLimit) {
  LoopbackServer server;
  auto options = loopback_only();
  options.max_bytes = 100000;
  EXPECT_THAT(refusal(server.url("/big"), options), HasSubstr("larger than the 100000 byte limit"));
  EXPECT_THAT(refusal(server.url("/big-chunked"), options), HasSubstr("larger than the 100000 byte limit"));
}

TEST(RemoteFetch, ReportsHttpErrorsAndTimeouts) {
  LoopbackServer server;
  EXPECT_THAT(refusal(server.url("/missing"), loopback_only()), HasSubstr("HTTP 404"));
  auto options = loopback_only();
  options.read_timeout = std::chrono::milliseconds(200);
  EXPECT_THAT(refusal(server.url("/slow"), options), HasSubstr("could not be fetched"));
}

TEST(RemoteFetch, RefusesBadUrlsAndHostsOffTheAllowList) {
  LoopbackServer server;
  EXPECT_THAT(refusal("ftp://127.0.0.1/image", loopback_only()), HasSubstr("scheme \"ftp\""));
  EXPECT_THAT(refusal("http://user:pw@127.0.0.1/image", loopback_only()), HasSubstr("user info"));
  EXPECT_THAT(refusal("http://127.0.0.1:99999/image", loopback_only()), HasSubstr("port"));
  EXPECT_THAT(refusal("http:///image", loopback_only()), HasSubstr("no host"));
  auto options = loopback_only();
  options.allowed_hosts = {"images.example.com"};
  EXPECT_THAT(refusal(server.url("/image"), options), HasSubstr("not on the allowed list"));
  options.allowed_hosts = {"127.0.0.1"};
  EXPECT_EQ(fetch_remote_image(server.url("/image"), options).size(), 1000u);
}

}  // namespace
}  // namespace loom::vision
