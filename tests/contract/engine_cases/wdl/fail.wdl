version 1.0

# Says what went wrong on stderr, then exits 3.
workflow fail {
  call boom
}

task boom {
  command <<<
    echo 'contract failure' >&2
    exit 3
  >>>
}
