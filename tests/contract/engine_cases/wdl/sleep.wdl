version 1.0

workflow sleep {
  input {
    Int seconds
  }
  call nap { input: seconds = seconds }
}

task nap {
  input {
    Int seconds
  }
  command <<<
    sleep ~{seconds}
  >>>
}
