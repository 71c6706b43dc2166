#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value behind a lock: the one lock type of the project (`withLock` as with the standard
/// library's `Mutex`).
///
/// Why not `Synchronization.Mutex`: on Linux its lock and unlock live in the uninstrumented
/// standard library (a futex), so the thread sanitizer sees no ordering between two critical
/// sections and reports every value a `Mutex` guards as a race (docs/operations.md, "Thread
/// sanitizer"). A `pthread_mutex_t` is intercepted by the sanitizer, so it checks real races
/// and only those. The cost is one allocation per lock; the lock and unlock are the same
/// futex-based calls.
public final class Locked<Value: ~Copyable>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: consuming sending Value) {
        self.value = value
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let status = pthread_mutex_init(mutex, nil)
        precondition(status == 0, "pthread_mutex_init failed: \(status)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the value while holding the lock.
    public func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
