import GatewayCore
import Testing

@testable import Policy

/// `BearerToken.extract` with a caller's known token texts: a known text is handed back as is for equal bytes,
/// and every other rule still applies.
@Suite("Bearer extraction with known tokens")
struct KnownTokenTextsTests {
    /// Knows `texts`, answering (with the stored string) only for equal bytes; records what it was asked.
    final class Memo: KnownTokenTexts {
        let texts: [String]
        var asked: [[UInt8]] = []

        init(_ texts: [String]) { self.texts = texts }

        func knownToken(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
            asked.append(Array(bytes))
            return texts.first { Array($0.utf8) == Array(bytes) }
        }
    }

    private func extract(_ value: String, memo: Memo, max: Int = 8192) -> Result<PresentedToken, TenantError> {
        Result { () throws(TenantError) in
            try BearerToken.extract(
                headers: HTTPFields([("Authorization", value)]), query: nil, maxTokenBytes: max, known: memo)
        }
    }

    @Test(
        "same answers as without the memo",
        arguments: [
            "Bearer abc.def.ghi", "bearer  abc.def.ghi", "DPoP abc.def.ghi", "Bearer abc def", "Bearer ab=c",
            "Bearer", "Bearer ", "Basic abc", "Bearer abc.def.ghi.jkl.mno.pqr", "Bearer é",
        ])
    func sameAnswers(value: String) {
        let memo = Memo(["abc.def.ghi"])
        let plain = Result { () throws(TenantError) in
            try BearerToken.extract(headers: HTTPFields([("Authorization", value)]), query: nil, maxTokenBytes: 20)
        }
        switch (extract(value, memo: memo, max: 20), plain) {
        case (.success(let a), .success(let b)): #expect(a == b)
        case (.failure(let a), .failure(let b)): #expect(a == b)
        default: Issue.record("memo changed the outcome of \(value)")
        }
    }

    @Test("the memo is asked with the token's bytes only, and its text is returned")
    func handsBackKnownText() throws {
        let memo = Memo(["abc.def.ghi"])
        let token = try extract("Bearer   abc.def.ghi", memo: memo).get()
        #expect(token.value == "abc.def.ghi")
        #expect(memo.asked == [Array("abc.def.ghi".utf8)])
    }

    @Test("a known token over the size limit is still refused")
    func sizeLimit() {
        let memo = Memo(["abc.def.ghi"])
        guard case .failure(let error) = extract("Bearer abc.def.ghi", memo: memo, max: 5) else {
            Issue.record("accepted")
            return
        }
        #expect(error.status == 401)
    }
}
