import type { Command, Option } from "commander";

/** Options whose value is a path on the host (completed as files). */
const FILE_OPTIONS = new Set(["--env-file", "--volume", "--snapshots-dir"]);

interface CommandInfo {
  name: string;
  summary: string;
  options: Array<{
    flags: string[];
    description: string;
    takesValue: boolean;
    file: boolean;
    choices?: readonly string[];
  }>;
  /** What the positional argument completes to. */
  positional: "files" | "snapshots" | "shells" | "none";
}

function describe(program: Command): CommandInfo[] {
  return program.commands.map((c) => {
    const name = c.name();
    const options = c.options.map((o: Option) => ({
      flags: [o.short, o.long].filter((f): f is string => !!f),
      description: o.description,
      takesValue: o.required || o.optional,
      file: !!o.long && FILE_OPTIONS.has(o.long),
      ...(o.argChoices ? { choices: o.argChoices } : {}),
    }));
    options.push({ flags: ["-h", "--help"], description: "show help", takesValue: false, file: false });
    const positional =
      name === "inspect" || name === "push"
        ? "snapshots"
        : name === "completion"
          ? "shells"
          : c.registeredArguments.length
            ? "files"
            : "none";
    return { name, summary: c.summary() || c.description().split("\n")[0] || "", options, positional };
  });
}

/** A bash completion script for the program (`eval "$(supermachine completion bash)"`). */
export function bashCompletion(program: Command): string {
  const cmds = describe(program);
  const bin = program.name();
  const fn = `_${bin.replace(/[^A-Za-z0-9_]/g, "_")}`;
  const optCases = cmds
    .map((c) => `    ${c.name}) opts="${c.options.flatMap((o) => o.flags).join(" ")}" ;;`)
    .join("\n");
  const fileOpts = [...new Set(cmds.flatMap((c) => c.options.filter((o) => o.file).flatMap((o) => o.flags)))];
  const valueOpts = [
    ...new Set(
      cmds.flatMap((c) =>
        c.options.filter((o) => o.takesValue && !o.file && !o.choices).flatMap((o) => o.flags),
      ),
    ),
  ];
  const choiceCases = [
    ...new Map(
      cmds.flatMap((c) =>
        c.options
          .filter((o) => o.choices)
          .map((o) => [o.flags.join("|"), o.choices!.join(" ")] as [string, string]),
      ),
    ),
  ]
    .map(([flags, words]) => `    ${flags}) COMPREPLY=($(compgen -W "${words}" -- "$cur")); return 0 ;;`)
    .join("\n");
  const posCases = cmds
    .map((c) => {
      const body =
        c.positional === "snapshots"
          ? `COMPREPLY=($(compgen -W "$(${bin} ls --quiet $dirarg 2>/dev/null)" -- "$cur"))`
          : c.positional === "shells"
            ? `COMPREPLY=($(compgen -W "bash zsh" -- "$cur"))`
            : c.positional === "files"
              ? `COMPREPLY=($(compgen -f -- "$cur"))`
              : "COMPREPLY=()";
      return `    ${c.name}) ${body} ;;`;
    })
    .join("\n");
  return `# bash completion for ${bin}; load it with: eval "$(${bin} completion bash)"
${fn}() {
  local cur prev cmd opts dirarg i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev=""
  if [ "$COMP_CWORD" -gt 0 ]; then prev="\${COMP_WORDS[COMP_CWORD-1]}"; fi
  if [ "$COMP_CWORD" -le 1 ]; then
    COMPREPLY=($(compgen -W "${cmds.map((c) => c.name).join(" ")} --help --version" -- "$cur"))
    return 0
  fi
  cmd="\${COMP_WORDS[1]}"
  dirarg=""
  for ((i = 2; i < COMP_CWORD; i++)); do
    if [ "\${COMP_WORDS[i]}" = "--snapshots-dir" ]; then dirarg="--snapshots-dir \${COMP_WORDS[i+1]}"; fi
  done
  case "$prev" in
${choiceCases}
    ${fileOpts.join("|") || "--no-file-options"}) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
    ${valueOpts.join("|") || "--no-value-options"}) COMPREPLY=(); return 0 ;;
  esac
  opts=""
  case "$cmd" in
${optCases}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return 0
  fi
  case "$cmd" in
${posCases}
  esac
  return 0
}
complete -o default -F ${fn} ${bin}
`;
}

const zq = (s: string) =>
  s
    .replace(/[[\]:'\\]/g, " ")
    .replace(/\s+/g, " ")
    .trim();

/** A zsh completion script (`eval "$(supermachine completion zsh)"`, or saved as `_supermachine` in `$fpath`). */
export function zshCompletion(program: Command): string {
  const cmds = describe(program);
  const bin = program.name();
  const fn = `_${bin.replace(/[^A-Za-z0-9_]/g, "_")}`;
  const list = cmds.map((c) => `    '${c.name}:${zq(c.summary)}'`).join("\n");
  const cases = cmds
    .map((c) => {
      const specs = c.options.map((o) => {
        const desc = zq(o.description);
        const value = o.takesValue
          ? o.file
            ? ":path:_files"
            : o.choices
              ? `:value:(${o.choices.join(" ")})`
              : ":value: "
          : "";
        const names = o.flags.length > 1 ? `{${o.flags.join(",")}}` : o.flags[0];
        const exclusive = o.flags.length > 1 ? `'(${o.flags.join(" ")})'` : "";
        return `${exclusive}${names}'[${desc}]${value}'`;
      });
      const pos =
        c.positional === "snapshots"
          ? `'*:snapshot:${fn}_snapshots'`
          : c.positional === "shells"
            ? "'1:shell:(bash zsh)'"
            : c.positional === "files"
              ? "'*:argument:_files'"
              : "";
      return `    ${c.name})\n      _arguments -s \\\n        ${[...specs, pos].filter(Boolean).join(" \\\n        ")} ;;`;
    })
    .join("\n");
  return `#compdef ${bin}
# zsh completion for ${bin}; load it with: eval "$(${bin} completion zsh)" (after compinit)
${fn}_snapshots() {
  local -a dirarg names
  local i=\${words[(I)--snapshots-dir]}
  (( i )) && dirarg=(--snapshots-dir "\${words[i+1]}")
  names=(\${(f)"$(${bin} ls --quiet $dirarg 2>/dev/null)"})
  _describe -t snapshots 'snapshot' names
}
${fn}() {
  local -a commands
  commands=(
${list}
  )
  if (( CURRENT == 2 )); then
    _describe -t commands 'command' commands
    return
  fi
  local cmd=\${words[2]}
  shift words
  (( CURRENT-- ))
  case $cmd in
${cases}
  esac
}
if [ "\${funcstack[1]}" = "${fn}" ]; then
  ${fn} "$@"
else
  compdef ${fn} ${bin}
fi
`;
}
