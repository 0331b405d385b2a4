//! Helpers of the real-server integration tests: starting and stopping servers on 127.0.0.1.
