version 1.0

# Greet someone into a file.
workflow hello {
  input {
    String name = "world"
  }
  call greet { input: name = name }
  output {
    File greeting = greet.out
  }
}

task greet {
  input {
    String name
  }
  command <<<
    echo "Hello, ~{name}!" > greeting.txt
  >>>
  output {
    File out = "greeting.txt"
  }
}
