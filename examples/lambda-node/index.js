// A Lambda-style Node.js handler, unchanged from what runs on AWS Lambda (runtime nodejs20.x).
let invocations = 0; // module state survives between calls on a warm instance

exports.handler = async (event, context) => {
  invocations += 1;
  console.log('event:', JSON.stringify(event));
  return {
    message: 'hello from Node.js in a lambent sandbox',
    event,
    requestId: context.awsRequestId,
    remainingMs: context.getRemainingTimeInMillis(),
    warmInvocations: invocations,
  };
};
