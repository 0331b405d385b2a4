//! The public surface every async driver offers, generated over its timer so the drivers
//! stay identical by construction.

/// Generates an async driver's API over a [`Timer`](crate::drive::Timer) value: `call`,
/// `call_with_report`, the [`CallContext`](crate::CallContext) extension trait `RunAsync`
/// (`run`, `run_with_report`, `resume`, `run_with`) and the closure extension trait
/// `RetryExt` (`op.retry(&policy)`).
///
/// Used by `redress-tokio` and `redress-smol`; a driver for another runtime needs only a
/// `Timer` and this line.
#[macro_export]
macro_rules! async_driver {
    ($timer:expr) => {
        /// Runs the async operation `op` under `policy` with the default classifier.
        ///
        /// `op` is an async closure (`AsyncFnMut`), so it may borrow `&mut` state across
        /// attempts.
        ///
        /// # Errors
        /// A [`RetryError`](redress::RetryError) saying why the call stopped, with the last
        /// error.
        pub fn call<T, E, F>(
            policy: &redress::Policy,
            op: F,
        ) -> impl ::core::future::Future<Output = ::core::result::Result<T, redress::RetryError<E>>>
        where
            F: AsyncFnMut(redress::Attempt) -> ::core::result::Result<T, E>,
            E: ::std::error::Error + 'static,
        {
            redress::drive::run_async(
                redress::CallContext::new(policy).classify(redress::classify::DefaultClassifier),
                &$timer,
                None,
                None,
                op,
            )
        }

        /// Like [`call`], also returning the call's [`CallReport`](redress::CallReport) (on
        /// success too).
        pub async fn call_with_report<T, E, F>(
            policy: &redress::Policy,
            op: F,
        ) -> (
            ::core::result::Result<T, redress::RetryError<E>>,
            redress::CallReport,
        )
        where
            F: AsyncFnMut(redress::Attempt) -> ::core::result::Result<T, E>,
            E: ::std::error::Error + 'static,
        {
            let mut report = redress::CallReport::new();
            let r = redress::drive::run_async(
                &redress::CallContext::new(policy),
                &$timer,
                None,
                Some(&mut report),
                op,
            )
            .await;
            (r, report)
        }

        /// Runs calls through a [`CallContext`](redress::CallContext) on this runtime.
        pub trait RunAsync<C, R> {
            /// Runs one call of `op`.
            fn run<T, E, F>(
                &self,
                op: F,
            ) -> impl ::core::future::Future<
                Output = redress::drive::CallResult<T, E, R>,
            >
            where
                F: AsyncFnMut(redress::Attempt) -> ::core::result::Result<T, E>,
                R: redress::drive::ResultCheck<T>,
                C: redress::Classify<E>;

            /// Runs one call, also returning its report.
            fn run_with_report<T, E, F>(
                &self,
                op: F,
            ) -> impl ::core::future::Future<
                Output = (
                    redress::drive::CallResult<T, E, R>,
                    redress::CallReport,
                ),
            >
            where
                F: AsyncFnMut(redress::Attempt) -> ::core::result::Result<T, E>,
                R: redress::drive::ResultCheck<T>,
                C: redress::Classify<E>;

            /// Continues a deferred call from its saved state.
            fn resume<T, E, F>(
                &self,
                state: &redress::RetryState,
                op: F,
            ) -> impl ::core::future::Future<
                Output = redress::drive::CallResult<T, E, R>,
            >
            where
                F: AsyncFnMut(redress::Attempt) -> ::core::result::Result<T, E>,
                R: redress::drive::ResultCheck<T>,
                C: redress::Classify<E>;

            /// Runs one call on an injected clock and timer (tests:
            /// [`ManualSleeper`](redress::drive::ManualSleeper)).
            fn run_with<T, E, F, Tm>(
                &self,
                timer: &Tm,
                op: F,
            ) -> impl ::core::future::Future<
                Output = redress::drive::CallResult<T, E, R>,
            >
            where
                F: AsyncFnMut(redress::Attempt) -> ::core::result::Result<T, E>,
                R: redress::drive::ResultCheck<T>,
                C: redress::Classify<E>,
                Tm: redress::drive::Timer + ?Sized;
        }

        impl<C, R> RunAsync<C, R> for redress::CallContext<'_, C, R> {
            async fn run<T, E, F>(
                &self,
                op: F,
            ) -> redress::drive::CallResult<T, E, R>
            where
                F: AsyncFnMut(redress::Attempt) -> ::core::result::Result<T, E>,
                R: redress::drive::ResultCheck<T>,
                C: redress::Classify<E>,
            {
                redress::drive::run_async(self, &$timer, None, None, op).await
            }

            async fn run_with_report<T, E, F>(
                &self,
                op: F,
            ) -> (
                redress::drive::CallResult<T, E, R>,
                redress::CallReport,
            )
            where
                F: AsyncFnMut(redress::Attempt) -> ::core::result::Result<T, E>,
                R: redress::drive::ResultCheck<T>,
                C: redress::Classify<E>,
            {
                let mut report = redress::CallReport::new();
                let r = redress::drive::run_async(self, &$timer, None, Some(&mut report), op).await;
                (r, report)
            }

            async fn resume<T, E, F>(
                &self,
                state: &redress::RetryState,
                op: F,
            ) -> redress::drive::CallResult<T, E, R>
            where
                F: AsyncFnMut(redress::Attempt) -> ::core::result::Result<T, E>,
                R: redress::drive::ResultCheck<T>,
                C: redress::Classify<E>,
            {
                redress::drive::run_async(self, &$timer, Some(state), None, op).await
            }

            async fn run_with<T, E, F, Tm>(
                &self,
                timer: &Tm,
                op: F,
            ) -> redress::drive::CallResult<T, E, R>
            where
                F: AsyncFnMut(redress::Attempt) -> ::core::result::Result<T, E>,
                R: redress::drive::ResultCheck<T>,
                C: redress::Classify<E>,
                Tm: redress::drive::Timer + ?Sized,
            {
                redress::drive::run_async(self, timer, None, None, op).await
            }
        }

        /// `fetch.retry(&policy).await` for functions and closures returning futures
        /// (`async fn fetch() -> Result<T, E>`).
        pub trait RetryExt<T, E, Fut>: FnMut() -> Fut + Sized
        where
            Fut: ::core::future::Future<Output = ::core::result::Result<T, E>>,
        {
            /// Runs the function under `policy` with the default classifier.
            fn retry(
                mut self,
                policy: &redress::Policy,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<T, redress::RetryError<E>>,
            >
            where
                E: ::std::error::Error + 'static,
            {
                call(policy, move |_| self())
            }
        }

        impl<T, E, Fut, F> RetryExt<T, E, Fut> for F
        where
            F: FnMut() -> Fut,
            Fut: ::core::future::Future<Output = ::core::result::Result<T, E>>,
        {
        }
    };
}
