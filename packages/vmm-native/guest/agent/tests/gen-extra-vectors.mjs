// Writes extra-vectors.txt: frames built with the test client's encoder and
// their canonical forms written out by hand (PROTOCOL.md section 7).
import { writeFileSync } from "node:fs";
import { END, frame, T, W } from "./client.mjs";

const v = [];
const add = (name, buf, canon) => v.push(`${name}\t${buf.toString("hex")}\t${canon}`);
add(
  "hello",
  frame(T.HELLO, 0, new W().u16(1).u16(1).u32(65536).u32(262144).u64(42).done()),
  "HELLO stream=0 flags=0 min_version=1 max_version=1 max_payload=65536 initial_window=262144 nonce=42",
);
add(
  "hello_ok",
  frame(
    T.HELLO_OK,
    0,
    new W().u16(1).u32(262144).u32(262144).u64(18446744073709551615n).u32(3).str("sm-init 0.1.0").done(),
  ),
  'HELLO_OK stream=0 flags=0 version=1 max_payload=262144 initial_window=262144 nonce=18446744073709551615 features=3 agent_version="sm-init 0.1.0"',
);
add(
  "ping",
  frame(T.PING, 0, new W().u64(1234567890123n).done()),
  "PING stream=0 flags=0 token=1234567890123",
);
add("pong", frame(T.PONG, 0, new W().u64(0).done()), "PONG stream=0 flags=0 token=0");
add(
  "event_listening",
  frame(T.EVENT, 0, new W().u8(3).u32(8080).str("").done()),
  'EVENT stream=0 flags=0 kind=3 value=8080 detail=""',
);
add(
  "exec",
  frame(
    T.EXEC,
    7,
    new W()
      .u32(1)
      .u32(5000)
      .u16(80)
      .u16(24)
      .list(["sh", "-c", 'echo "hi"\\n'])
      .list(["A=1", "B=\n\t\x7f"])
      .str("/tmp")
      .list([])
      .done(),
  ),
  'EXEC stream=7 flags=0 flags=1 timeout_ms=5000 cols=80 rows=24 argv=["sh","-c","echo \\"hi\\"\\\\n"] env=["A=1","B=\\u000a\\u0009\\u007f"] cwd="/tmp" chain=[]',
);
add(
  "exec_utf8",
  frame(
    T.EXEC,
    8,
    new W()
      .u32(0)
      .u32(0)
      .u16(0)
      .u16(0)
      .list(["echo", "héllo ☃"])
      .list([])
      .str("")
      .list(["true", "false"])
      .done(),
  ),
  'EXEC stream=8 flags=0 flags=0 timeout_ms=0 cols=0 rows=0 argv=["echo","héllo ☃"] env=[] cwd="" chain=["true","false"]',
);
add("started", frame(T.STARTED, 7, new W().u32(4242).done()), "STARTED stream=7 flags=0 pid=4242");
add("stdin_end", frame(T.STDIN, 7, Buffer.from("ab\x00"), END), "STDIN stream=7 flags=1 data=616200");
add("stdout_empty_end", frame(T.STDOUT, 7, Buffer.alloc(0), END), "STDOUT stream=7 flags=1 data=");
add(
  "stderr",
  frame(T.STDERR, 4294967295, Buffer.from([0xff, 0x10])),
  "STDERR stream=4294967295 flags=0 data=ff10",
);
add(
  "resize",
  frame(T.RESIZE, 7, new W().u16(132).u16(43).done()),
  "RESIZE stream=7 flags=0 cols=132 rows=43",
);
add("signal", frame(T.SIGNAL, 7, new W().u32(15).done()), "SIGNAL stream=7 flags=0 signum=15");
add(
  "exit_signal",
  frame(T.EXIT, 7, new W().u32(-1).u32(9).u8(1).u64(10240).done()),
  "EXIT stream=7 flags=0 exit_code=-1 term_signal=9 timed_out=1 peak_rss_kib=10240",
);
add(
  "write_file",
  frame(T.WRITE_FILE, 9, new W().str("/etc/x").u32(0o4755).u32(1).done()),
  'WRITE_FILE stream=9 flags=0 path="/etc/x" mode=2541 flags=1',
);
add("file_data", frame(T.FILE_DATA, 9, Buffer.from("0123"), END), "FILE_DATA stream=9 flags=1 data=30313233");
add(
  "read_file",
  frame(T.READ_FILE, 10, new W().str("/a b").done()),
  'READ_FILE stream=10 flags=0 path="/a b"',
);
add(
  "file_info",
  frame(T.FILE_INFO, 10, new W().u64(5000000000).u32(0o644).done()),
  "FILE_INFO stream=10 flags=0 size=5000000000 mode=420",
);
add(
  "tcp_connect",
  frame(T.TCP_CONNECT, 11, new W().u16(8080).str("").done()),
  'TCP_CONNECT stream=11 flags=0 port=8080 host=""',
);
add("connected", frame(T.CONNECTED, 11), "CONNECTED stream=11 flags=0");
add("tcp_data", frame(T.TCP_DATA, 11, Buffer.from("GET"), 0), "TCP_DATA stream=11 flags=0 data=474554");
add("window", frame(T.WINDOW, 11, new W().u32(131072).done()), "WINDOW stream=11 flags=0 increment=131072");
add("reset", frame(T.RESET, 11), "RESET stream=11 flags=0");
add("ok", frame(T.OK, 9, new W().u64(4).done()), "OK stream=9 flags=0 value=4");
add(
  "error",
  frame(T.ERROR, 0, new W().u32(3).u32(-2).str("unknown type 0x7f").done()),
  'ERROR stream=0 flags=0 code=3 errno=-2 message="unknown type 0x7f"',
);
add(
  "workload_config",
  frame(
    T.WORKLOAD_CONFIG,
    12,
    new W()
      .u32(3)
      .u16(80)
      .list(["/bin/httpd", "-f"])
      .list(["X=y"])
      .str("/srv")
      .str("www:www")
      .str("web")
      .done(),
  ),
  'WORKLOAD_CONFIG stream=12 flags=0 flags=3 watch_port=80 argv=["/bin/httpd","-f"] env=["X=y"] cwd="/srv" user="www:www" hostname="web"',
);
add("workload_start", frame(T.WORKLOAD_START, 13), "WORKLOAD_START stream=13 flags=0");
add(
  "workload_signal",
  frame(T.WORKLOAD_SIGNAL, 14, new W().u32(1).done()),
  "WORKLOAD_SIGNAL stream=14 flags=0 signum=1",
);
add(
  "workload_logs",
  frame(T.WORKLOAD_LOGS, 15, new W().u32(4096).done()),
  "WORKLOAD_LOGS stream=15 flags=0 max_bytes=4096",
);
add("workload_logs_short", frame(T.WORKLOAD_LOGS, 15, Buffer.alloc(2)), "!BAD_PAYLOAD");
add("reserved_flags_kept", frame(T.PING, 0, new W().u64(1).done(), 0xfe), "PING stream=0 flags=254 token=1");
add(
  "trailing_bytes_ignored",
  frame(T.SIGNAL, 3, new W().u32(2).u32(99).done()),
  "SIGNAL stream=3 flags=0 signum=2",
);
add(
  "bad_magic",
  Buffer.concat([Buffer.from([0x53, 0x4e]), frame(T.PING, 0, new W().u64(1).done()).subarray(2)]),
  "!BAD_FRAME",
);
add(
  "too_large",
  Buffer.concat([frame(T.STDIN, 1, Buffer.alloc(0)).subarray(0, 8), new W().u32(65537).done()]),
  "!FRAME_TOO_LARGE",
);
add("unknown_type", frame(0x7f, 0, Buffer.alloc(2)), "!UNKNOWN_TYPE");
add("short_ping", frame(T.PING, 0, Buffer.alloc(7)), "!BAD_PAYLOAD");
add("str_overrun", frame(T.READ_FILE, 1, new W().u32(10).bytes("abc").done()), "!BAD_PAYLOAD");
add(
  "strlist_overrun",
  frame(T.EXEC, 1, new W().u32(0).u32(0).u16(0).u16(0).u32(2).str("a").done()),
  "!BAD_PAYLOAD",
);
add(
  "exec_missing_chain",
  frame(T.EXEC, 1, new W().u32(0).u32(0).u16(0).u16(0).list(["a"]).list([]).str("").done()),
  "!BAD_PAYLOAD",
);
writeFileSync(new URL("./extra-vectors.txt", import.meta.url), `${v.join("\n")}\n`);
console.log(`${v.length} vectors`);
