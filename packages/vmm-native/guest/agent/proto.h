/* Wire constants of the supermachine agent protocol, version 1.
 * The contract is packages/agent-protocol/PROTOCOL.md. */
#ifndef SM_PROTO_H
#define SM_PROTO_H

#define SM_MAGIC 0x4D53u
#define SM_HDR 12
#define SM_FLAG_END 0x01u
#define SM_VERSION 1
#define SM_DEFAULT_MAX_PAYLOAD 65536u
#define SM_MIN_MAX_PAYLOAD 4096u
#define SM_MAX_MAX_PAYLOAD (1u << 20)
#define SM_DEFAULT_WINDOW 262144u
#define SM_MAX_STREAMS 1024

enum sm_type {
  T_HELLO = 0x01, T_HELLO_OK = 0x02, T_PING = 0x03, T_PONG = 0x04, T_EVENT = 0x05,
  T_EXEC = 0x10, T_STARTED = 0x11, T_STDIN = 0x12, T_STDOUT = 0x13, T_STDERR = 0x14,
  T_RESIZE = 0x15, T_SIGNAL = 0x16, T_EXIT = 0x17,
  T_WRITE_FILE = 0x20, T_FILE_DATA = 0x21, T_READ_FILE = 0x22, T_FILE_INFO = 0x23,
  T_TCP_CONNECT = 0x30, T_CONNECTED = 0x31, T_TCP_DATA = 0x32,
  T_WINDOW = 0x40, T_RESET = 0x41, T_OK = 0x42, T_ERROR = 0x43,
  T_WORKLOAD_CONFIG = 0x50, T_WORKLOAD_START = 0x51, T_WORKLOAD_SIGNAL = 0x52,
  T_WORKLOAD_LOGS = 0x53,
};

enum sm_err {
  E_BAD_FRAME = 1, E_FRAME_TOO_LARGE = 2, E_UNKNOWN_TYPE = 3, E_BAD_PAYLOAD = 4,
  E_UNKNOWN_STREAM = 5, E_STREAM_EXISTS = 6, E_FLOW_CONTROL = 7,
  E_UNSUPPORTED_VERSION = 8, E_NOT_READY = 9, E_NOT_FOUND = 10, E_IO = 11,
  E_CANCELLED = 12, E_EXEC_FAILED = 13, E_LIMIT = 14, E_STATE = 15,
};

enum sm_event {
  EV_WORKLOAD_READY = 1, EV_WORKLOAD_STARTED = 2, EV_LISTENING = 3,
  EV_WORKLOAD_EXITED = 4, EV_LOG = 5,
};

#define SM_FEAT_PTY 1u
#define SM_FEAT_TCP 2u
#define SM_FEAT_VSOCK 4u
#define SM_FEAT_LOGS 8u /* WORKLOAD_LOGS and the workload output ring */

#define SM_EXEC_TTY 1u
#define SM_WF_MKDIRS 1u
#define SM_WL_HOLD 1u
#define SM_WL_WATCH 2u
#define SM_WL_EXEC_AS_WORKLOAD 4u /* execs run as the workload user, in its cwd */

#endif
