version 1.0

# Writes a greeting to a file, the run's one output.
workflow ok {
  input {
    String name
  }
  call greet { input: name = name }
  output {
    File greeting = greet.greeting
  }
}

task greet {
  input {
    String name
  }
  command <<<
    echo "hello ~{name}" > greeting.txt
  >>>
  output {
    File greeting = "greeting.txt"
  }
}
