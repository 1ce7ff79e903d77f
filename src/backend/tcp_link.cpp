#include "backend/tcp_link.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <thread>

#include "core/error.h"

namespace loom::backend {
namespace {

using Clock = std::chrono::steady_clock;

struct AddressList {
  addrinfo* head = nullptr;
  ~AddressList() {
    if (head != nullptr) freeaddrinfo(head);
  }
};

void resolve(const Endpoint& endpoint, bool passive, AddressList& out) {
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  const std::string port = std::to_string(endpoint.port);
  const int status =
      getaddrinfo(endpoint.host.empty() ? nullptr : endpoint.host.c_str(), port.c_str(), &hints, &out.head);
  if (status != 0) {
    fail(ErrorKind::kInvalidRequest, "cannot resolve the address {}: {}", endpoint.to_string(), gai_strerror(status));
  }
}

void set_options(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

int milliseconds_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 1 << 30));
}

std::string peer_name(const sockaddr_storage& address) {
  char host[NI_MAXHOST] = {};
  char port[NI_MAXSERV] = {};
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&address), sizeof address, host, sizeof host, port, sizeof port,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "an unknown peer";
  }
  return std::strchr(host, ':') != nullptr ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

}  // namespace

std::string Endpoint::to_string() const {
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

Endpoint parse_endpoint(std::string_view text, std::string_view flag, bool allow_port_zero) {
  const auto bad = [&](std::string_view why) {
    fail(ErrorKind::kInvalidRequest, "{} '{}': {} (expected HOST:PORT, e.g. 127.0.0.1:29500 or [::1]:29500)", flag,
         text, why);
  };
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) bad("no port");
  std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    bad("an IPv6 address needs brackets");
  }
  if (host.empty()) bad("no host");
  int value = -1;
  const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || error != std::errc() || end != port.data() + port.size()) bad("the port is not a number");
  if (value < (allow_port_zero ? 0 : 1) || value > 65535) {
    bad(allow_port_zero ? "the port must be 0 to 65535" : "the port must be 1 to 65535");
  }
  return {std::string(host), value};
}

TcpConnection::TcpConnection(int fd, std::string peer) : fd_(fd), peer_(std::move(peer)) {
  set_options(fd_);
}

TcpConnection::~TcpConnection() {
  ::close(fd_);
}

void TcpConnection::lost(const char* during, int error) const {
  if (shut_.load()) fail(ErrorKind::kInternal, "the connection to {} was closed (the group was aborted)", peer_);
  if (error == 0) fail(ErrorKind::kInternal, "lost the connection to {} while {}: the peer closed it", peer_, during);
  fail(ErrorKind::kInternal, "lost the connection to {} while {}: {}", peer_, during, std::strerror(error));
}

void TcpConnection::write_all(const uint8_t* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd_, data, size, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      lost("sending", errno);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}

void TcpConnection::read_all(uint8_t* data, size_t size, std::optional<Clock::time_point> deadline) {
  while (size > 0) {
    if (shut_.load()) lost("receiving", 0);
    pollfd p = {fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, deadline ? milliseconds_until(*deadline) : -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      lost("receiving", errno);
    }
    if (ready == 0) {
      fail(ErrorKind::kInternal, "timed out waiting for a message from {}", peer_);
    }
    const ssize_t n = ::recv(fd_, data, size, 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      lost("receiving", errno);
    }
    if (n == 0) lost("receiving", 0);
    data += n;
    size -= static_cast<size_t>(n);
  }
}

void TcpConnection::send(std::span<const uint8_t> message) {
  send_parts({message});
}

void TcpConnection::send_parts(std::initializer_list<std::span<const uint8_t>> parts) {
  size_t total = 0;
  for (const auto& part : parts) total += part.size();
  if (total > kMaxFrameBytes) {
    fail(ErrorKind::kInternal, "a message of {} bytes to {} exceeds the {}-byte frame limit", total, peer_,
         kMaxFrameBytes);
  }
  const auto length = static_cast<uint32_t>(total);
  uint8_t header[4];
  std::memcpy(header, &length, sizeof header);
  write_all(header, sizeof header);
  for (const auto& part : parts) write_all(part.data(), part.size());
}

std::vector<uint8_t> TcpConnection::receive(std::optional<std::chrono::milliseconds> timeout) {
  std::optional<Clock::time_point> deadline;
  if (timeout) deadline = Clock::now() + *timeout;
  uint8_t header[4];
  read_all(header, sizeof header, deadline);
  uint32_t length = 0;
  std::memcpy(&length, header, sizeof length);
  if (length > kMaxFrameBytes) {
    fail(ErrorKind::kInternal, "{} sent a frame of {} bytes, above the {}-byte limit (not a loom rank?)", peer_, length,
         kMaxFrameBytes);
  }
  std::vector<uint8_t> message(length);
  read_all(message.data(), message.size(), deadline);
  return message;
}

void TcpConnection::receive_into(std::span<uint8_t> out) {
  uint8_t header[4];
  read_all(header, sizeof header, std::nullopt);
  uint32_t length = 0;
  std::memcpy(&length, header, sizeof length);
  if (length != out.size()) {
    fail(ErrorKind::kInternal, "{} sent {} bytes where {} were expected", peer_, length, out.size());
  }
  read_all(out.data(), out.size(), std::nullopt);
}

void TcpConnection::shutdown() {
  shut_ = true;
  ::shutdown(fd_, SHUT_RDWR);
}

TcpListener::TcpListener(const Endpoint& endpoint) : host_(endpoint.host) {
  AddressList addresses;
  resolve(endpoint, true, addresses);
  int last_error = 0;
  for (addrinfo* a = addresses.head; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = errno;
      continue;
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
      last_error = errno;
      ::close(fd);
      continue;
    }
    sockaddr_storage bound = {};
    socklen_t size = sizeof bound;
    getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &size);
    port_ = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port)
                                        : ntohs(reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
    fd_ = fd;
    return;
  }
  fail(ErrorKind::kUnsupported, "cannot listen on {}: {}", endpoint.to_string(),
       last_error == EADDRINUSE ? "the address is already in use" : std::strerror(last_error));
}

TcpListener::~TcpListener() {
  if (fd_ >= 0) ::close(fd_);
}

std::unique_ptr<TcpConnection> TcpListener::accept(Clock::time_point deadline) {
  for (;;) {
    pollfd p = {fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, milliseconds_until(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return nullptr;
    sockaddr_storage address = {};
    socklen_t size = sizeof address;
    const int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&address), &size, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
      fail(ErrorKind::kInternal, "accepting a connection on port {} failed: {}", port_, std::strerror(errno));
    }
    return std::make_unique<TcpConnection>(fd, peer_name(address));
  }
}

std::unique_ptr<TcpConnection> connect_tcp(const Endpoint& endpoint, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  AddressList addresses;
  resolve(endpoint, false, addresses);
  int last_error = 0;
  for (;;) {
    for (addrinfo* a = addresses.head; a != nullptr; a = a->ai_next) {
      const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
      if (fd < 0) {
        last_error = errno;
        continue;
      }
      int error = 0;
      if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
        error = errno;
        if (error == EINPROGRESS) {
          pollfd p = {fd, POLLOUT, 0};
          const int ready = ::poll(&p, 1, milliseconds_until(deadline));
          socklen_t size = sizeof error;
          if (ready <= 0) {
            error = ETIMEDOUT;
          } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0) {
            error = errno;
          }
        }
      }
      if (error == 0) {
        const int flags = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
        return std::make_unique<TcpConnection>(fd, endpoint.to_string());
      }
      last_error = error;
      ::close(fd);
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  fail(ErrorKind::kInternal, "cannot connect to {} within {} s: {}", endpoint.to_string(),
       std::chrono::duration_cast<std::chrono::seconds>(timeout).count(), std::strerror(last_error));
}

}  // namespace loom::backend
