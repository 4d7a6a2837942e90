import GatewayCore

/// The fields of a session's last request header block, by position, with their raw bytes: a `RecentFieldStore`
/// keyed by each field's name and value bytes, held by the session object that nghttp2's callbacks reach.
///
/// Contract: confined to its session's loop. Only fields the session accepted are remembered (values that passed
/// its UTF-8 check), so a hit needs no check again. Memory is bounded: at most `slots` fields and `maxBytes` bytes.
final class RecentFields {
    // Safety (`@exclusivity(unchecked)`): confined to one loop, and no access is held across a call that could
    // reach this object again.
    @exclusivity(unchecked) private var store: RecentFieldStore

    var slots: Int { store.slots }
    var maxBytes: Int { store.maxBytes }

    init(slots: Int = 32, maxBytes: Int = 32 * 1024) {
        store = RecentFieldStore(slots: slots, maxBytes: maxBytes)
    }

    /// Whether a field is remembered at `slot` and its name and value are exactly these bytes.
    @inline(__always)
    func matches(
        _ slot: Int, name: UnsafePointer<UInt8>, nameCount: Int, value: UnsafePointer<UInt8>, valueCount: Int
    ) -> Bool {
        store.matches(slot, name: name, nameCount: nameCount, value: value, valueCount: valueCount)
    }

    /// The field at `slot`; only after `matches` said it is there.
    @inline(__always)
    func field(at slot: Int) -> HTTPFields.Field { store.field(at: slot) }

    /// The value at `slot`; only after `matches` said it is there.
    @inline(__always)
    func value(at slot: Int) -> String { store.value(at: slot) }

    /// Remembers `field` (whose bytes these are) at `slot`; see `RecentFieldStore.remember`.
    func remember(
        _ field: HTTPFields.Field, at slot: Int, name: UnsafePointer<UInt8>, nameCount: Int,
        value: UnsafePointer<UInt8>, valueCount: Int
    ) {
        store.remember(field, at: slot, name: name, nameCount: nameCount, value: value, valueCount: valueCount)
    }
}
