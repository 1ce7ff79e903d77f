#pragma once
// TCP between the processes of one tensor-parallel group (POSIX sockets): rank 0 listens, each worker connects, and
// both sides exchange framed messages (a u32 little-endian length, then that many bytes). Every wait has a deadline
// or ends when the peer goes away: a closed or reset connection, a timeout, or shutdown() from another thread makes
// the blocked call throw loom::Error(kInternal) naming the peer, so a lost rank is never a hang.
//
// Connections set TCP_NODELAY (a decode step's messages are small and latency-bound) and SO_KEEPALIVE, and never
// raise SIGPIPE (MSG_NOSIGNAL): writing to a dead peer throws instead.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loom::backend {

// "HOST:PORT" or "[IPv6]:PORT"; port 0 asks the listener for a free port.
struct Endpoint {
  std::string host;
  int port = 0;
  std::string to_string() const;
};

// Throws kInvalidRequest naming `flag` and the expected form when `text` is not HOST:PORT with a port in 0..65535
// (`allow_port_zero` false: 1..65535).
Endpoint parse_endpoint(std::string_view text, std::string_view flag, bool allow_port_zero);

// Frames above this are refused (a corrupt length, or a peer that is not loom).
inline constexpr uint32_t kMaxFrameBytes = 1u << 30;

class TcpConnection {
 public:
  TcpConnection(int fd, std::string peer);
  ~TcpConnection();
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;

  // One frame. Throws kInternal ("… lost the connection to PEER …") when the peer is gone or shutdown() was called.
  void send(std::span<const uint8_t> message);
  // Sends the concatenation of `parts` as one frame (a header and a tensor's bytes without copying them together).
  void send_parts(std::initializer_list<std::span<const uint8_t>> parts);
  // The next frame; waits at most `timeout` (nullopt: until it arrives or the connection ends). Throws kInternal on a
  // closed connection, a timeout, shutdown() or a frame above kMaxFrameBytes.
  std::vector<uint8_t> receive(std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  // Receives the next frame into `out` when it has exactly out.size() bytes (a collective's result); throws otherwise.
  void receive_into(std::span<uint8_t> out);

  // Ends the connection both ways from any thread: a send or receive blocked in another thread returns and throws.
  void shutdown();
  const std::string& peer() const { return peer_; }

 private:
  void write_all(const uint8_t* data, size_t size);
  void read_all(uint8_t* data, size_t size, std::optional<std::chrono::steady_clock::time_point> deadline);
  [[noreturn]] void lost(const char* during, int error) const;

  int fd_;
  std::string peer_;
  std::atomic_bool shut_{false};
};

class TcpListener {
 public:
  // Binds and listens; throws kInvalidRequest when the host does not resolve, kUnsupported when the address is in
  // use or cannot be bound (the message names the endpoint and the reason).
  explicit TcpListener(const Endpoint& endpoint);
  ~TcpListener();
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

  // The bound port (the chosen one when the endpoint asked for port 0).
  int port() const { return port_; }
  const std::string& host() const { return host_; }
  // The next connection, or nullptr when none arrives before `deadline`.
  std::unique_ptr<TcpConnection> accept(std::chrono::steady_clock::time_point deadline);

 private:
  int fd_ = -1;
  int port_ = 0;
  std::string host_;
};

// Connects to `endpoint`, retrying while nothing listens there yet (rank 0 may still be starting) until `timeout`.
// Throws kInvalidRequest when the host does not resolve, kInternal naming the endpoint and the last error on timeout.
std::unique_ptr<TcpConnection> connect_tcp(const Endpoint& endpoint, std::chrono::milliseconds timeout);

}  // namespace loom::backend
