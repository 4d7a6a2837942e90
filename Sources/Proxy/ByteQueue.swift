/// A FIFO of bytes with O(1) amortised consume: the outbound buffer of a connection.
struct ByteQueue {
    private(set) var storage: [UInt8] = []
    private var head = 0

    var count: Int { storage.count - head }
    var isEmpty: Bool { head == storage.count }

    mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 { storage.append(contentsOf: bytes) }

    mutating func append(_ buffer: UnsafeRawBufferPointer) { storage.append(contentsOf: buffer) }

    /// Appends and empties `bytes`. An empty queue takes the array's storage instead of copying it, and hands its
    /// own (empty) storage back in `bytes` for the caller to fill next time.
    mutating func append(taking bytes: inout [UInt8]) {
        if isEmpty {
            swap(&storage, &bytes)
            head = 0
        } else {
            storage.append(contentsOf: bytes)
        }
        bytes.removeAll(keepingCapacity: true)
    }

    /// Calls `body` with the unconsumed bytes; `body` returns how many it consumed.
    mutating func consume(_ body: (UnsafeRawBufferPointer) -> Int) {
        guard !isEmpty else { return }
        let used = storage.withUnsafeBytes { raw in body(UnsafeRawBufferPointer(rebasing: raw[head...])) }
        head += used
        if head == storage.count {
            storage.removeAll(keepingCapacity: storage.capacity <= 1 << 20)
            head = 0
        } else if head > 1 << 16 && head > storage.count / 2 {
            storage.removeFirst(head)
            head = 0
        }
    }

    mutating func removeAll() {
        storage.removeAll()
        head = 0
    }
}
