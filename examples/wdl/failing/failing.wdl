version 1.0

# A task that fails: the run ends EXECUTOR_ERROR with the task's exit code.
workflow failing {
  input {
    Int code = 3
  }
  call fail { input: code = code }
}

task fail {
  input {
    Int code
  }
  command <<<
    echo "about to exit with ~{code}" >&2
    exit ~{code}
  >>>
}
