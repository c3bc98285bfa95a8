// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice A deposit collector pulls `amount` of `token` from `payer` into the settlement contract
/// (its caller), using whatever authorization `data` carries.
interface IDepositCollector {
    function collect(address payer, address token, uint256 amount, bytes32 channelId, bytes calldata data)
        external;
}

/// @title BatchSettlement: 402claw's escrow for x402's `batch-settlement` scheme.
/// @notice Written from the scheme's spec and the x402 SDK's ABI. A payer deposits once into a
/// channel, signs cumulative vouchers off chain, and the receiver side claims many of them in one
/// transaction (claim only moves accounting), then sweeps claimed funds to the receiver (settle).
/// The payer escapes through a timed withdrawal; the receiver side refunds cooperatively.
/// @dev No constructor and no storage set at deployment: the contract is copied to the address
/// the SDK expects (anvil_setCode), so the EIP-712 domain is derived from `address(this)` and
/// `block.chainid` on every use, and the reentrancy lock lives in transient storage.
contract BatchSettlement {
    struct ChannelConfig {
        address payer;
        address payerAuthorizer; // EOA signing vouchers, or zero for the payer itself (ERC-1271)
        address receiver;
        address receiverAuthorizer; // signs claim batches and refunds; never zero
        address token;
        uint40 withdrawDelay;
        bytes32 salt;
    }

    struct Voucher {
        ChannelConfig channel;
        uint128 maxClaimableAmount;
    }

    struct VoucherClaim {
        Voucher voucher;
        bytes signature; // the payer side's signature over the voucher
        uint128 totalClaimed; // the cumulative amount to claim, at most maxClaimableAmount
    }

    struct Channel {
        uint128 balance; // deposited minus withdrawn and refunded
        uint128 totalClaimed; // monotonic: old vouchers can never be claimed twice
    }

    struct PendingWithdrawal {
        uint128 amount;
        uint40 initiatedAt;
    }

    struct ReceiverTotals {
        uint128 totalClaimed;
        uint128 totalSettled;
    }

    uint40 public constant MIN_WITHDRAW_DELAY = 900;
    uint40 public constant MAX_WITHDRAW_DELAY = 2_592_000;

    bytes32 private constant _DOMAIN_TYPEHASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    );
    bytes32 private constant _NAME_HASH = keccak256("x402 Batch Settlement");
    bytes32 private constant _VERSION_HASH = keccak256("1");
    bytes32 public constant CHANNEL_CONFIG_TYPEHASH = keccak256(
        "ChannelConfig(address payer,address payerAuthorizer,address receiver,address receiverAuthorizer,address token,uint40 withdrawDelay,bytes32 salt)"
    );
    bytes32 public constant VOUCHER_TYPEHASH =
        keccak256("Voucher(bytes32 channelId,uint128 maxClaimableAmount)");
    bytes32 public constant REFUND_TYPEHASH =
        keccak256("Refund(bytes32 channelId,uint256 nonce,uint128 amount)");
    bytes32 public constant CLAIM_ENTRY_TYPEHASH =
        keccak256("ClaimEntry(bytes32 channelId,uint128 maxClaimableAmount,uint128 totalClaimed)");
    bytes32 public constant CLAIM_BATCH_TYPEHASH = keccak256(
        "ClaimBatch(ClaimEntry[] claims)ClaimEntry(bytes32 channelId,uint128 maxClaimableAmount,uint128 totalClaimed)"
    );

    uint256 private constant _MAX_S =
        0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    bytes4 private constant _ERC1271_MAGIC = 0x1626ba7e;
    // Transient slot of the reentrancy lock: keccak256("claw402.BatchSettlement.lock") - 1.
    bytes32 private constant _LOCK_SLOT =
        0x6ae6eb278307dbf449ddcbca10b791d702f5fbeae3210ab0e5ce5c5d97ee6b1d;

    mapping(bytes32 => Channel) public channels;
    mapping(bytes32 => PendingWithdrawal) public pendingWithdrawals;
    mapping(address => mapping(address => ReceiverTotals)) public receivers;
    mapping(bytes32 => uint256) public refundNonce;

    event ChannelCreated(bytes32 indexed channelId, ChannelConfig config);
    event Deposited(bytes32 indexed channelId, address indexed collector, uint128 amount, uint128 balance);
    event Claimed(bytes32 indexed channelId, address indexed receiver, uint128 amount, uint128 totalClaimed);
    event Settled(address indexed receiver, address indexed token, address indexed sender, uint128 amount);
    event WithdrawInitiated(bytes32 indexed channelId, uint128 amount, uint40 finalizableAt);
    event Withdrawn(bytes32 indexed channelId, uint128 amount);
    event Refunded(bytes32 indexed channelId, uint128 amount, uint256 nonce);
    event ChannelClosed(bytes32 indexed channelId, ChannelConfig config);

    error Reentrancy();
    error ZeroAmount();
    error WithdrawDelayOutOfRange();
    error ZeroReceiverAuthorizer();
    error DepositNotReceived(uint256 expected, uint256 received);
    error InvalidVoucherSignature(bytes32 channelId);
    error ClaimExceedsVoucher(bytes32 channelId);
    error ClaimExceedsBalance(bytes32 channelId);
    error NotReceiverSide(bytes32 channelId);
    error NotPayerSide(bytes32 channelId);
    error EmptyClaimBatch();
    error MixedReceiverAuthorizers();
    error InvalidAuthorizerSignature();
    error InvalidRefundNonce(uint256 expected, uint256 given);
    error AmountExceedsAvailable(uint256 available);
    error WithdrawalAlreadyPending(bytes32 channelId);
    error NoPendingWithdrawal(bytes32 channelId);
    error WithdrawDelayNotElapsed(uint256 finalizableAt);
    error TokenTransferFailed();

    modifier nonReentrant() {
        bytes32 slot = _LOCK_SLOT;
        uint256 locked;
        assembly {
            locked := tload(slot)
        }
        if (locked != 0) revert Reentrancy();
        assembly {
            tstore(slot, 1)
        }
        _;
        assembly {
            tstore(slot, 0)
        }
    }

    // --- deposits ---

    /// @notice Add `amount` to a channel, pulled from the payer by `collector`. Anyone may call
    /// (the facilitator pays the gas); the collector's authorization is bound to the channel id.
    function deposit(ChannelConfig calldata config, uint128 amount, address collector, bytes calldata collectorData)
        external
        nonReentrant
    {
        if (amount == 0) revert ZeroAmount();
        if (config.withdrawDelay < MIN_WITHDRAW_DELAY || config.withdrawDelay > MAX_WITHDRAW_DELAY) {
            revert WithdrawDelayOutOfRange();
        }
        if (config.receiverAuthorizer == address(0)) revert ZeroReceiverAuthorizer();
        bytes32 channelId = getChannelId(config);
        uint256 before = _balanceOf(config.token);
        IDepositCollector(collector).collect(config.payer, config.token, amount, channelId, collectorData);
        uint256 received = _balanceOf(config.token) - before;
        if (received != amount) revert DepositNotReceived(amount, received);

        Channel storage ch = channels[channelId];
        if (ch.balance == ch.totalClaimed) emit ChannelCreated(channelId, config);
        ch.balance += amount;
        emit Deposited(channelId, collector, amount, ch.balance);
    }

    // --- claims and settlement ---

    /// @notice Claim vouchers as the receiver or receiver authorizer of every row.
    function claim(VoucherClaim[] calldata voucherClaims) external nonReentrant {
        if (voucherClaims.length == 0) revert EmptyClaimBatch();
        for (uint256 i = 0; i < voucherClaims.length; i++) {
            ChannelConfig calldata config = voucherClaims[i].voucher.channel;
            if (msg.sender != config.receiver && msg.sender != config.receiverAuthorizer) {
                revert NotReceiverSide(getChannelId(config));
            }
            _claim(voucherClaims[i]);
        }
    }

    /// @notice Claim vouchers relayed by anyone, authorized by one ClaimBatch signature of the
    /// receiver authorizer that every row shares.
    function claimWithSignature(VoucherClaim[] calldata voucherClaims, bytes calldata authorizerSignature)
        external
        nonReentrant
    {
        if (voucherClaims.length == 0) revert EmptyClaimBatch();
        address authorizer = voucherClaims[0].voucher.channel.receiverAuthorizer;
        for (uint256 i = 1; i < voucherClaims.length; i++) {
            if (voucherClaims[i].voucher.channel.receiverAuthorizer != authorizer) {
                revert MixedReceiverAuthorizers();
            }
        }
        if (!_isValidSignature(authorizer, getClaimBatchDigest(voucherClaims), authorizerSignature)) {
            revert InvalidAuthorizerSignature();
        }
        for (uint256 i = 0; i < voucherClaims.length; i++) {
            _claim(voucherClaims[i]);
        }
    }

    /// @notice Send everything claimed and not yet settled for (receiver, token) to the receiver.
    /// Permissionless: the money can only go to the receiver. A no-op when nothing is due.
    function settle(address receiver, address token) external nonReentrant {
        ReceiverTotals storage totals = receivers[receiver][token];
        uint128 amount = totals.totalClaimed - totals.totalSettled;
        if (amount == 0) return;
        totals.totalSettled = totals.totalClaimed;
        _transfer(token, receiver, amount);
        emit Settled(receiver, token, msg.sender, amount);
    }

    // --- the payer's escape hatch ---

    /// @notice Start a timed withdrawal of at most the unclaimed escrow; the receiver side may
    /// still claim vouchers until the delay ends.
    function initiateWithdraw(ChannelConfig calldata config, uint128 amount) external nonReentrant {
        bytes32 channelId = getChannelId(config);
        _requirePayerSide(config, channelId);
        if (amount == 0) revert ZeroAmount();
        PendingWithdrawal storage pending = pendingWithdrawals[channelId];
        if (pending.initiatedAt != 0) revert WithdrawalAlreadyPending(channelId);
        Channel storage ch = channels[channelId];
        uint128 available = ch.balance - ch.totalClaimed;
        if (amount > available) revert AmountExceedsAvailable(available);
        pending.amount = amount;
        pending.initiatedAt = uint40(block.timestamp);
        emit WithdrawInitiated(channelId, amount, uint40(block.timestamp) + config.withdrawDelay);
    }

    /// @notice Complete a timed withdrawal once its delay has passed, capped by what is still
    /// unclaimed then.
    function finalizeWithdraw(ChannelConfig calldata config) external nonReentrant {
        bytes32 channelId = getChannelId(config);
        _requirePayerSide(config, channelId);
        PendingWithdrawal memory pending = pendingWithdrawals[channelId];
        if (pending.initiatedAt == 0) revert NoPendingWithdrawal(channelId);
        uint256 finalizableAt = uint256(pending.initiatedAt) + config.withdrawDelay;
        if (block.timestamp < finalizableAt) revert WithdrawDelayNotElapsed(finalizableAt);
        delete pendingWithdrawals[channelId];
        Channel storage ch = channels[channelId];
        uint128 available = ch.balance - ch.totalClaimed;
        uint128 amount = pending.amount < available ? pending.amount : available;
        ch.balance -= amount;
        if (amount > 0) _transfer(config.token, config.payer, amount);
        emit Withdrawn(channelId, amount);
        if (amount > 0 && amount == available) emit ChannelClosed(channelId, config);
    }

    // --- cooperative refunds ---

    /// @notice Return up to `amount` of unclaimed escrow to the payer, called by the receiver side.
    function refund(ChannelConfig calldata config, uint128 amount) external nonReentrant {
        bytes32 channelId = getChannelId(config);
        if (msg.sender != config.receiver && msg.sender != config.receiverAuthorizer) {
            revert NotReceiverSide(channelId);
        }
        _refund(config, channelId, amount);
    }

    /// @notice Refund relayed by anyone with the receiver authorizer's Refund signature for the
    /// channel's current refund nonce.
    function refundWithSignature(
        ChannelConfig calldata config,
        uint128 amount,
        uint256 nonce,
        bytes calldata receiverAuthorizerSignature
    ) external nonReentrant {
        bytes32 channelId = getChannelId(config);
        uint256 expected = refundNonce[channelId];
        if (nonce != expected) revert InvalidRefundNonce(expected, nonce);
        bytes32 digest = getRefundDigest(channelId, nonce, amount);
        if (!_isValidSignature(config.receiverAuthorizer, digest, receiverAuthorizerSignature)) {
            revert InvalidAuthorizerSignature();
        }
        _refund(config, channelId, amount);
    }

    /// @notice Run several calls of this contract in one transaction (e.g. claim then refund).
    function multicall(bytes[] calldata data) external returns (bytes[] memory results) {
        results = new bytes[](data.length);
        for (uint256 i = 0; i < data.length; i++) {
            (bool ok, bytes memory ret) = address(this).delegatecall(data[i]);
            if (!ok) {
                assembly {
                    revert(add(ret, 0x20), mload(ret))
                }
            }
            results[i] = ret;
        }
    }

    // --- views ---

    function domainSeparator() public view returns (bytes32) {
        return keccak256(abi.encode(_DOMAIN_TYPEHASH, _NAME_HASH, _VERSION_HASH, block.chainid, address(this)));
    }

    /// @notice EIP-712 hash of the config under this contract's domain: bound to chain and address.
    function getChannelId(ChannelConfig calldata config) public view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                CHANNEL_CONFIG_TYPEHASH,
                config.payer,
                config.payerAuthorizer,
                config.receiver,
                config.receiverAuthorizer,
                config.token,
                config.withdrawDelay,
                config.salt
            )
        );
        return _hashTypedData(structHash);
    }

    function getVoucherDigest(bytes32 channelId, uint128 maxClaimableAmount) public view returns (bytes32) {
        return _hashTypedData(keccak256(abi.encode(VOUCHER_TYPEHASH, channelId, maxClaimableAmount)));
    }

    function getRefundDigest(bytes32 channelId, uint256 nonce, uint128 amount) public view returns (bytes32) {
        return _hashTypedData(keccak256(abi.encode(REFUND_TYPEHASH, channelId, nonce, amount)));
    }

    function getClaimBatchDigest(VoucherClaim[] calldata voucherClaims) public view returns (bytes32) {
        bytes32[] memory entries = new bytes32[](voucherClaims.length);
        for (uint256 i = 0; i < voucherClaims.length; i++) {
            VoucherClaim calldata c = voucherClaims[i];
            entries[i] = keccak256(
                abi.encode(
                    CLAIM_ENTRY_TYPEHASH, getChannelId(c.voucher.channel), c.voucher.maxClaimableAmount, c.totalClaimed
                )
            );
        }
        return _hashTypedData(keccak256(abi.encode(CLAIM_BATCH_TYPEHASH, keccak256(abi.encodePacked(entries)))));
    }

    // --- internals ---

    /// @dev A row whose total is not above the channel's claimed total is skipped, so a stale or
    /// replayed voucher can never be claimed twice and never sinks the rest of the batch.
    function _claim(VoucherClaim calldata c) private {
        ChannelConfig calldata config = c.voucher.channel;
        bytes32 channelId = getChannelId(config);
        uint128 maxClaimable = c.voucher.maxClaimableAmount;
        address voucherSigner = config.payerAuthorizer == address(0) ? config.payer : config.payerAuthorizer;
        bool valid = config.payerAuthorizer == address(0)
            ? _isValidSignature(voucherSigner, getVoucherDigest(channelId, maxClaimable), c.signature)
            : _recover(getVoucherDigest(channelId, maxClaimable), c.signature) == voucherSigner;
        if (!valid) revert InvalidVoucherSignature(channelId);
        if (c.totalClaimed > maxClaimable) revert ClaimExceedsVoucher(channelId);
        Channel storage ch = channels[channelId];
        if (c.totalClaimed > ch.balance) revert ClaimExceedsBalance(channelId);
        if (c.totalClaimed <= ch.totalClaimed) return;
        uint128 delta = c.totalClaimed - ch.totalClaimed;
        ch.totalClaimed = c.totalClaimed;
        receivers[config.receiver][config.token].totalClaimed += delta;
        emit Claimed(channelId, config.receiver, delta, c.totalClaimed);
    }

    /// @dev The nonce advances first, so even a refund that moves nothing spends its signature.
    /// A pending withdrawal shrinks by the refunded amount, or ends when the refund covers it.
    function _refund(ChannelConfig calldata config, bytes32 channelId, uint128 amount) private {
        if (amount == 0) revert ZeroAmount();
        uint256 nonce = refundNonce[channelId]++;
        Channel storage ch = channels[channelId];
        uint128 available = ch.balance - ch.totalClaimed;
        uint128 actual = amount < available ? amount : available;
        if (actual == 0) return;
        ch.balance -= actual;
        PendingWithdrawal storage pending = pendingWithdrawals[channelId];
        if (pending.initiatedAt != 0) {
            if (actual >= pending.amount) delete pendingWithdrawals[channelId];
            else pending.amount -= actual;
        }
        _transfer(config.token, config.payer, actual);
        emit Refunded(channelId, actual, nonce);
        if (actual == available) emit ChannelClosed(channelId, config);
    }

    function _requirePayerSide(ChannelConfig calldata config, bytes32 channelId) private view {
        if (msg.sender != config.payer && (config.payerAuthorizer == address(0) || msg.sender != config.payerAuthorizer)) {
            revert NotPayerSide(channelId);
        }
    }

    function _hashTypedData(bytes32 structHash) private view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    function _balanceOf(address token) private view returns (uint256) {
        (bool ok, bytes memory ret) = token.staticcall(abi.encodeWithSignature("balanceOf(address)", address(this)));
        if (!ok || ret.length < 32) revert TokenTransferFailed();
        return abi.decode(ret, (uint256));
    }

    function _transfer(address token, address to, uint256 amount) private {
        (bool ok, bytes memory ret) = token.call(abi.encodeWithSignature("transfer(address,uint256)", to, amount));
        if (!ok || (ret.length > 0 && !abi.decode(ret, (bool)))) revert TokenTransferFailed();
    }

    /// @dev SignatureChecker semantics: ERC-1271 when the signer has code, ECDSA otherwise.
    function _isValidSignature(address signer, bytes32 digest, bytes calldata signature) private view returns (bool) {
        if (signer == address(0)) return false;
        if (signer.code.length > 0) {
            (bool ok, bytes memory ret) = signer.staticcall(abi.encodeWithSelector(_ERC1271_MAGIC, digest, signature));
            return ok && ret.length >= 32 && abi.decode(ret, (bytes32)) == bytes32(_ERC1271_MAGIC);
        }
        return _recover(digest, signature) == signer;
    }

    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address) {
        if (signature.length != 65) return address(0);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) v += 27;
        if (uint256(s) > _MAX_S || (v != 27 && v != 28)) return address(0);
        return ecrecover(digest, v, r, s);
    }
}
