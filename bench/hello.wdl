version 1.0

# The hello-world of the benchmarks in WDL. Toil runs every WDL task in a container, so this
# workflow has no task: it completes on a machine without a container runtime.
workflow hello {
  input {
    String message = "Hello, world"
  }
  output {
    String greeting = message
  }
}
